-- expect: timed_out
-- error: instruction budget | timed out
-- why: one table.sort of a large table is a single uninterruptible Go call costing a few VM instructions; sorting in a loop must still hit the limits in time
function handle(req)
  local t = {}
  for i = 1, 200000 do t[i] = (i * 7919) % 200003 end
  while true do
    table.sort(t)
    table.sort(t, nil)
  end
end
