-- expect: failed
-- error: attempt to call
-- why: a crafted 40-byte binary chunk crashed go-lua's loader fatally; no function that could load one may be reachable
local chunk = "\27LuaR\0\1\4\8\4\8\0\25\147\r\n\26\n" .. ("\255"):rep(24)
function handle(req)
  for _, name in ipairs({"load", "loadstring", "loadfile", "dofile", "require"}) do
    if _G[name] ~= nil or rawget(_G, name) ~= nil then error("ESCAPE: " .. name .. " reachable") end
  end
  if string.dump ~= nil or ("").dump ~= nil then error("ESCAPE: string.dump reachable") end
  return load(chunk, "x", "b")()
end
