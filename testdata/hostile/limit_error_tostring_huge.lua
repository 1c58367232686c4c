-- expect: failed
-- error: error object
-- why: an error object whose __tostring itself errors or returns a non-string must still give a readable failure
function handle(req)
  local ok, e = pcall(error, setmetatable({}, {__tostring = function() error("inner") end}))
  if ok then error("error did not raise") end
  error(setmetatable({}, {__tostring = function() return {} end}))
end
