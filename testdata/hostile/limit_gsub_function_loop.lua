-- expect: timed_out
-- error: instruction budget | timed out
-- why: gsub calls a Lua function for every match from Go; a looping replacement function must be stopped
function handle(req)
  return (("abc"):rep(10):gsub(".", function(c) while true do end end))
end
