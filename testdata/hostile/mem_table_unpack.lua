-- expect: failed
-- error: too many results | stack overflow
-- why: table.unpack and string.byte over a huge range would push millions of values on the Lua stack
function handle(req)
  local ok, e = pcall(string.byte, ("x"):rep(1e6), 1, -1)
  return select("#", table.unpack({}, 1, 1e8))
end
