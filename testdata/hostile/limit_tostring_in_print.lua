-- expect: timed_out
-- error: instruction budget | timed out
-- why: print and tostring call __tostring from Go; a looping __tostring must still be under the budget
function handle(req)
  local t = setmetatable({}, {__tostring = function() while true do end end})
  print("value:", t)
  return tostring(t)
end
