-- expect: failed
-- error: attempt to call
-- why: loadfile reads and compiles host files, binary ones included
function handle(req)
  local f = loadfile("/etc/passwd")
  return f
end
