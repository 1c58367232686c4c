-- expect: timed_out
-- error: instruction budget | timed out
-- why: the simplest denial of service; the count hook must stop it
function handle(req)
  while true do end
end
