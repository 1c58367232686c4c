-- expect: timed_out
-- error: instruction budget | timed out
-- why: xpcall inside xpcall's handler, in a loop: every layer must re-raise the abort
function handle(req)
  local function h(e)
    while true do xpcall(error, h) end
  end
  while true do xpcall(error, h) end
end
