-- expect: failed
-- error: too large
-- process-error: ran out of memory | memory limit exceeded
-- why: table.concat of a large table would build one huge string (and go-lua's was quadratic); it is capped
function handle(req)
  local t = {}
  local piece = ("p"):rep(100)
  for i = 1, 200000 do t[i] = piece end
  return #table.concat(t, ",")
end
