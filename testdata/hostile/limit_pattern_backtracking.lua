-- expect: timed_out
-- error: instruction budget | timed out
-- why: a backtracking pattern over a long subject is exponential-ish work inside one Go call; the matcher must charge its steps to the budget
function handle(req)
  local s = ("a"):rep(100000)
  return s:find(".-.-.-.-.-b")
end
