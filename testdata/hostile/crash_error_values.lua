-- expect: failed
-- error: crash_error_values:
-- why: error with nil, booleans, functions, tables, huge levels and recursion through error objects must all fail the run cleanly, with a position
function handle(req)
  for _, v in ipairs({{nil}, {false}, {print}, {{}}, {"x", 1e300}, {"x", -1e300}, {"x", 0/0}, {setmetatable({}, {__tostring = function() return 1/0 end})}}) do
    local ok, e = pcall(error, v[1], v[2])
    if ok then error("error returned") end
  end
  local ok, e = pcall(error)
  if ok or e ~= nil then error("error() gave " .. tostring(e)) end
  error(setmetatable({}, {__index = function() error("nested") end}))
end
