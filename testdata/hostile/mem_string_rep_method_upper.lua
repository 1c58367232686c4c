-- expect: failed
-- error: too large
-- why: ("x"):rep(1e8):upper() would allocate 100 MB twice through the string metatable's methods
function handle(req)
  return #("x"):rep(1e8):upper()
end
