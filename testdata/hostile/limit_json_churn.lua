-- expect: timed_out
-- error: instruction budget | timed out
-- why: json.encode and json.decode of one 8 MB string are one value each but megabytes of Go work; a loop of them must be charged
function handle(req)
  local doc = '"' .. ("x"):rep(8e6) .. '"'
  local r
  while true do
    r = nil r = json.encode(doc)
    r = nil r = json.decode(doc)
  end
end
