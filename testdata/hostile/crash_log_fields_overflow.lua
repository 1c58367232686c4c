-- expect: succeeded
-- value: "logged"
-- why: structured log fields larger than the room left in the log, with an empty message, made the log cap slice a string at a negative index (a Go panic)
function handle(req)
  log.info("", {s = ("x"):rep(70000)})
  log.info("", {s = ("y"):rep(100)})
  log.warn("message", {s = ("z"):rep(1e6)})
  return "logged"
end
