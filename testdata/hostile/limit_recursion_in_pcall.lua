-- expect: failed
-- error: caught:
-- process-error: memory limit exceeded | ran out of memory
-- why: a stack overflow caught by pcall leaves a huge stack behind; the run goes on (here to fail on purpose), and the state must still work for the next invocation
local function f(n) return 1 + f(n + 1) end
function handle(req)
  local ok, e = pcall(f, 1)
  if ok or not tostring(e):find("stack overflow") then error("unexpected: " .. tostring(e)) end
  error("caught: " .. tostring(e))
end
