-- expect: timed_out
-- error: instruction budget | timed out
-- why: string.rep, upper, lower, reverse, format and table.concat of 8 MB each cost milliseconds of Go work for a few VM instructions; in a loop they must be charged, or the clock is only checked every few hundred calls
function handle(req)
  local s = ("x"):rep(8e6)
  local parts = {s:sub(1, 4e6), s:sub(1, 4e6)}
  local r
  while true do
    r = nil r = ("y"):rep(8e6)
    r = nil r = s:upper()
    r = nil r = s:lower()
    r = nil r = s:reverse()
    r = nil r = string.format("%s", s)
    r = nil r = table.concat(parts)
  end
end
