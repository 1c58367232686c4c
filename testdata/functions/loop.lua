-- loop.lua: never returns. The instruction budget or the timeout must stop it
-- (status timed_out).
function handle(req)
  while true do end
end
