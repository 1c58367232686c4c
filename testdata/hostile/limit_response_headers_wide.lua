-- expect: timed_out
-- error: timed out | instruction budget
-- why: a response table with 20,000 headers: converting the result walks the headers table several times in Go (quadratic in go-lua), which took 20 s without a limit check; the walks must check the limits
function handle(req)
  local h = {}
  for i = 1, 20000 do h["x-h" .. i] = "v" end
  return {status = 200, headers = h, body = "ok"}
end
