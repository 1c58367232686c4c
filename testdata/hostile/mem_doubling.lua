-- expect: failed
-- error: memory limit exceeded | ran out of memory | too large
-- sandbox: process
-- why: s = s .. s doubles between two hook calls; 40 doublings ask for a terabyte, which only the child's memory limit can stop
function handle(req)
  local s = "xxxxxxxx"
  for i = 1, 40 do s = s .. s end
  return #s
end
