-- expect: timed_out
-- error: instruction budget | timed out
-- why: table.insert(t, 1, v) and table.remove(t, 1) shift every element in one uninterruptible Go call; a loop of them on a large table must be charged
function handle(req)
  local t = {}
  for i = 1, 300000 do t[i] = i end
  while true do
    table.insert(t, 1, 0)
    table.remove(t, 1)
  end
end
