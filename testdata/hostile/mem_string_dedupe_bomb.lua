-- expect: failed
-- error: memory limit exceeded | ran out of memory | too large
-- sandbox: process
-- why: upper/lower/reverse/format each copy a 16 MiB string; keeping the copies fills memory in a few instructions per 16 MiB
function handle(req)
  local s = ("x"):rep(16e6)
  local t = {}
  for i = 1, 1000 do
    t[#t + 1] = s:upper()
    t[#t + 1] = s:reverse()
    t[#t + 1] = string.format("%s", s)
  end
  return #t
end
