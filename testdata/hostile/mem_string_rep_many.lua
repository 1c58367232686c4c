-- expect: failed
-- error: memory limit exceeded | ran out of memory
-- sandbox: process
-- why: each string.rep stays under the 16 MiB cap, but keeping them all adds up quickly, a few instructions per 16 MiB
function handle(req)
  local t = {}
  for i = 1, 1000 do
    t[i] = string.rep("z", 16e6 - i)
  end
  return #t
end
