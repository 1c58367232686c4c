-- expect: timed_out
-- error: instruction budget | timed out
-- why: go-lua runs xpcall's message handler with hooks disabled (and calls stack slot 1 instead of it); a looping handler must still be stopped
function handle(req)
  return xpcall(function() error("x") end, function(e) while true do end end)
end
