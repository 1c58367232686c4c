-- expect: succeeded
-- value: 1000
-- why: go-lua's print writes to the process's stdout, which in a sandbox child is the wire protocol; print and log must only fill Result.Logs
function handle(req)
  for i = 1, 2000 do
    print("line", i, ("x"):rep(100))
  end
  log.error("after the cap")
  if io ~= nil then io.write("raw") end
  return 1000
end
