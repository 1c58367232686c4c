-- expect: succeeded
-- value: "clean"
-- runs: 2
-- why: plays with _ENV (a local _ENV, a replaced upvalue, setmetatable on the environment) to reach or replace the shared base table
local base_print = print
function handle(req)
  if print ~= base_print or type(pairs) ~= "function" or getmetatable(_ENV) ~= false then
    error("LEAK: environment changed by an earlier invocation")
  end
  -- a local _ENV only affects this chunk's code
  do
    local _ENV = setmetatable({}, {__index = function(t, k) return "pwned" end})
    x = 1
  end
  if pcall(setmetatable, _ENV, {__index = function() return "pwned" end}) then
    error("ESCAPE: environment metatable replaced")
  end
  -- walk everything reachable from the environment: no table may lead to
  -- the shared base (whose functions would then be writable)
  local seen = {}
  local function walk(t, depth)
    if seen[t] or depth > 4 then return end
    seen[t] = true
    local mt = getmetatable(t)
    if type(mt) == "table" and type(mt.__index) == "table" and rawget(mt.__index, "pcall") ~= nil then
      error("ESCAPE: reached the base table through a metatable")
    end
    for k, v in pairs(t) do
      if type(v) == "table" then walk(v, depth + 1) end
    end
  end
  walk(_ENV, 0)
  pairs = nil
  print = function() end
  _ENV.next = nil
  return "clean"
end
