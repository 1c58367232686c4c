-- expect: failed
-- error: (a boolean value)
-- why: the environment's metatable leads to the frozen base table shared by every invocation; getmetatable must hide it
function handle(req)
  if pcall(setmetatable, _G, nil) then error("ESCAPE: environment metatable replaced") end
  if pcall(setmetatable, _ENV, {}) then error("ESCAPE: _ENV metatable replaced") end
  local mt = getmetatable(_G)
  mt.__index.print = function() end
  return "poisoned"
end
