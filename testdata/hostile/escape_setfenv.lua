-- expect: failed
-- error: attempt to call
-- why: setfenv/getfenv (Lua 5.1) would let a function read or swap the environment of its caller or of the library functions
function handle(req)
  if getfenv ~= nil then error("ESCAPE: getfenv exists") end
  setfenv(1, {})
  return "swapped"
end
