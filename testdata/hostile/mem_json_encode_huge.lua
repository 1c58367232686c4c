-- expect: failed
-- error: too large
-- process-error: ran out of memory | memory limit exceeded
-- why: json.encode of a structure whose text is far larger than the structure in memory (one long string referenced many times)
function handle(req)
  local s = ("j"):rep(1000)
  local t = {}
  for i = 1, 100000 do t[i] = s end
  return #json.encode(t)
end
