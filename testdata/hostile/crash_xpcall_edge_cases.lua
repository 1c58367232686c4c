-- expect: succeeded
-- value: "ok"
-- why: xpcall with odd handlers (nil, a table, an erroring one, itself) must neither call the wrong function (go-lua uses stack slot 1) nor crash
local reran = 0
reran = reran + 1
function handle(req)
  local ok, e = xpcall(error, nil, "x")
  if ok then error("xpcall(error, nil) succeeded") end
  ok, e = xpcall(error, {}, "x")
  ok, e = xpcall(error, function(m) error("again") end, "x")
  ok, e = xpcall(xpcall, xpcall, xpcall, xpcall)
  ok, e = pcall(xpcall)
  if reran ~= 1 then error("the chunk ran again inside xpcall") end
  return "ok"
end
