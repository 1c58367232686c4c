-- expect: failed
-- error: attempt to index
-- why: package.loaded holds every opened library (io, os, debug) and the real global table
function handle(req)
  return package.loaded._G.io.open("/etc/passwd"):read("*a")
end
