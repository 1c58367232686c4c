-- expect: failed
-- error: attempt to call
-- why: require searches package.path on the host's disk and could load any .lua file (or return the io library)
function handle(req)
  local io = require("io")
  return io.open("/etc/passwd"):read("*a")
end
