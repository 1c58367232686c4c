-- expect: failed
-- error: memory limit exceeded | ran out of memory
-- sandbox: process
-- why: a table of growing distinct strings: each allocation is small, the total is not
function handle(req)
  local t = {}
  local s = ("y"):rep(10000)
  for i = 1, 1e7 do
    t[i] = s .. i
  end
end
