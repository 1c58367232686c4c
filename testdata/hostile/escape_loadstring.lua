-- expect: failed
-- error: attempt to call
-- why: loadstring (Lua 5.1) compiles code from a string; it must not exist under any name
function handle(req)
  if _G.loadstring or rawget(_G, "loadstring") or string.loadstring then
    error("ESCAPE: loadstring reachable")
  end
  return loadstring("return 1")()
end
