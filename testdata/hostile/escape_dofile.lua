-- expect: failed
-- error: attempt to call
-- why: dofile runs a file from the host's disk (and with no argument, stdin: the sandbox's wire protocol)
function handle(req)
  return dofile("/etc/passwd")
end
