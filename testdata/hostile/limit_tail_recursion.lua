-- expect: timed_out
-- error: instruction budget | timed out
-- why: proper tail calls never overflow the stack; only the budget stops them
local function f(n) return f(n + 1) end
function handle(req)
  return f(1)
end
