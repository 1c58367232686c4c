-- expect: timed_out
-- error: instruction budget | timed out
-- why: decoding a large document runs in Go; decoding it in a loop must be charged to the budget, not be free
function handle(req)
  local doc = "[" .. ("1,"):rep(5e5) .. "1]"
  local n = 0
  while true do
    n = n + #json.decode(doc)
  end
end
