-- expect: succeeded
-- value: "flooded"
-- why: print and log.* with huge messages in a loop: logs are capped (entries and bytes), and the loop must not be slow per call
function handle(req)
  local s = ("l"):rep(16e6)
  for i = 1, 200 do
    print(s, s, s)
    log.error(s)
  end
  return "flooded"
end
