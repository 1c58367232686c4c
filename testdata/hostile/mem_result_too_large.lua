-- expect: failed
-- error: too large | limit is
-- process-error: ran out of memory | memory limit exceeded
-- why: the handler's return value becomes Result.Value and the HTTP body; a huge one must fail the run instead of travelling to the API and the database
function handle(req)
  local s = ("r"):rep(1e6)
  local t = {}
  for i = 1, 20 do t[i] = s end
  return t
end
