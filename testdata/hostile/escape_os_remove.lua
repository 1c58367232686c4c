-- expect: failed
-- error: attempt to call
-- why: os.remove, os.rename and os.tmpname touch the host's file system
function handle(req)
  if os.rename ~= nil or os.tmpname ~= nil or os.setlocale ~= nil then
    error("ESCAPE: os file functions reachable")
  end
  return os.remove("/tmp/picloud-hostile-should-not-exist")
end
