-- expect: failed
-- error: attempt to call
-- why: load compiles arbitrary code, binary chunks included (a crafted chunk crashed go-lua); it must be unreachable by any route
function handle(req)
  for route, f in pairs({
    G = rawget(_G, "load"), ENV = _ENV.load, base = _G._G.load,
    string = string.load, table = table.load, strmeta = ("").load,
  }) do
    error("ESCAPE: load reachable via " .. route)
  end
  local f = load("return 1")
  return f()
end
