-- expect: timed_out
-- error: instruction budget | timed out
-- why: gmatch and match with a costly pattern, many times over, must all be charged
function handle(req)
  local s = ("ab"):rep(50000)
  local n = 0
  while true do
    for w in s:gmatch("(a*b*a*b*a*b*)x?") do n = n + 1 end
    if s:match("^(.-)%1$") then n = n + 1 end
  end
end
