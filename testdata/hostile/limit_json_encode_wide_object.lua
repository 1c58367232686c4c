-- expect: timed_out
-- error: timed out | instruction budget
-- why: go-lua's next is linear in the position, so walking an object of n keys costs n*n/2 lookups: json.encode of 40,000 keys was one uninterruptible Go call of 85 s; the encoder must check the limits while it walks
function handle(req)
  local t = {}
  for i = 1, 40000 do t["key" .. i] = i end
  return #json.encode(t)
end
