-- expect: timed_out
-- error: instruction budget | timed out
-- why: an error raised and caught in a tight loop unwinds go-lua's stack each time; the budget must still count and stop it
function handle(req)
  local n = 0
  while true do
    local ok, e = pcall(error, {n = n})
    n = n + 1
  end
end
