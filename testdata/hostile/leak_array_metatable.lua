-- expect: succeeded
-- value: "clean"
-- runs: 2
-- why: json.array's marker metatable is per invocation; poisoning it (an __index, a __newindex) must not reach the next one
function handle(req)
  local mt = getmetatable(json.array())
  if mt.__index ~= nil or mt.__newindex ~= nil or mt.pwned ~= nil then
    error("LEAK: array metatable poisoned by an earlier invocation")
  end
  mt.__index = function() return "pwned" end
  mt.pwned = true
  local decoded = json.decode("[]")
  if decoded.x ~= "pwned" then error("decoded arrays do not share this invocation's marker") end
  return "clean"
end
