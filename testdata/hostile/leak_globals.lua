-- expect: succeeded
-- value: "clean"
-- runs: 2
-- why: a global set by one invocation (top level, handle, _G, _ENV, rawset) must not be readable by the next one on the same state
counter = (counter or 0) + 1
if counter ~= 1 then error("LEAK: top-level global survived") end
function handle(req)
  if leaked ~= nil or escaped ~= nil or rawget(_G, "leaked_raw") ~= nil or _ENV.leaked_env ~= nil then
    error("LEAK: global from an earlier invocation")
  end
  leaked = {secret = "tenant A"}
  _G.escaped = true
  _ENV.leaked_env = 1
  rawset(_G, "leaked_raw", 1)
  return "clean"
end
