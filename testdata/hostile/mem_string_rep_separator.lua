-- expect: failed
-- error: too large
-- why: the separator counts too: string.rep("", n, sep) and string.rep("x", n, sep) build n * (#s + #sep) bytes
function handle(req)
  local ok, e = pcall(string.rep, "", 1e18, "y")
  if ok then error("built a huge string from an empty one") end
  return #string.rep("x", 1e9, ",")
end
