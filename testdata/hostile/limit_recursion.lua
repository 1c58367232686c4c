-- expect: failed
-- error: stack overflow
-- process-error: memory limit exceeded | ran out of memory
-- why: unbounded non-tail recursion grows go-lua's stack to its maximum; it must end as a Lua error, and the grown state must not be reused
local function f(n) return 1 + f(n + 1) end
function handle(req)
  return f(1)
end
