-- expect: failed
-- why: an inconsistent comparator ("always true") makes a C quicksort run off the array; it must end with an error, not a hang or crash
function handle(req)
  local t = {}
  for i = 1, 1000 do t[i] = i % 7 end
  table.sort(t, function(a, b) return true end)
  error("sorted with an invalid order function")
end
