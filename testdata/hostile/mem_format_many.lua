-- expect: failed
-- error: too large
-- process-error: ran out of memory | memory limit exceeded
-- why: many conversions, each within limits, can still add up to a string far above the cap
function handle(req)
  local s = ("q"):rep(1e6)
  local args = {}
  for i = 1, 20 do args[i] = s end
  local ok, e = pcall(string.format, ("%99d"):rep(2e5), table.unpack((function()
    local t = {} for i = 1, 2e5 do t[i] = i end return t end)()))
  if ok then error("built a 20 MB string with %99d") end
  return #string.format(("%s"):rep(20), table.unpack(args))
end
