-- expect: failed
-- error: attempt to index
-- why: the debug library reaches the registry, upvalues (the real library tables) and locals of other functions
function handle(req)
  local reg = debug.getregistry()
  return tostring(reg)
end
