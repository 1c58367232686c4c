-- expect: failed
-- error: memory limit exceeded | ran out of memory
-- sandbox: process
-- why: a table growing without end; the in-VM heap check (or the child's limit) must end it before the machine runs out
function handle(req)
  local t = {}
  local i = 0
  while true do
    i = i + 1
    t[i] = {i, i, i}
  end
end
