-- expect: failed
-- error: too large
-- why: go-lua's string.rep("x", 1e10) asks Go for 10 GB at once: a fatal, unrecoverable out-of-memory of the whole process
function handle(req)
  return #string.rep("x", 1e10)
end
