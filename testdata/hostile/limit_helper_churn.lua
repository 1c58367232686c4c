-- expect: timed_out
-- error: instruction budget | timed out
-- why: hashing, base64 and hex over megabytes in a loop: the helpers charge per byte, so the loop ends on the budget
function handle(req)
  local s = ("h"):rep(6e6)
  local r
  while true do
    r = nil r = crypto.sha256(s)
    r = nil r = base64.encode(s)
    r = nil r = hex.encode(s:sub(1, 3e6))
    r = nil r = s:find("not there", 1, true)
  end
end
