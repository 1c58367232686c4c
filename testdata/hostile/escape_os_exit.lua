-- expect: failed
-- error: attempt to call
-- sandbox: process
-- why: os.exit calls Go's os.Exit and would take the whole worker down; process only because a regression would end the test binary
function handle(req)
  os.exit(3)
  return "still here"
end
