-- expect: timed_out
-- error: instruction budget | timed out
-- why: table.sort runs in Go and calls the comparator for every comparison; a looping comparator must be stopped
function handle(req)
  local t = {}
  for i = 1, 100 do t[i] = 101 - i end
  table.sort(t, function(a, b) while true do end end)
  return t
end
