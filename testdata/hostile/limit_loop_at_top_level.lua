-- expect: timed_out
-- error: instruction budget | timed out
-- why: top-level code runs before handle on every invocation; it is under the same limits
local i = 0
while true do i = i + 1 end
function handle(req) return i end
