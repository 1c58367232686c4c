-- error.lua: always fails. It logs a warning, then calls a function that does
-- not exist on line 6, so the run fails with an error starting "error:6:".
function handle(req)
  log.warn("about to fail")
  local missing = nil
  return missing()
end
