-- expect: timed_out
-- error: instruction budget | timed out
-- why: os.date and time.format with long formats run in Go (%c writes 24 bytes); a loop of them must be charged, or each hook interval holds minutes of work
function handle(req)
  local f = ("%c"):rep(2.5e5)
  local r
  while true do
    r = nil r = os.date(f, 0)
    r = nil r = time.format(0, f)
  end
end
