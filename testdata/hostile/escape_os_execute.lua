-- expect: failed
-- error: attempt to call
-- why: os.execute runs a shell command on the host
function handle(req)
  return os.execute("id")
end
