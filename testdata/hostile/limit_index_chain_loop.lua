-- expect: failed
-- error: loop in
-- why: two tables whose __index (and __newindex) point at each other form an endless lookup chain inside the VM
function handle(req)
  local a, b = {}, {}
  setmetatable(a, {__index = b, __newindex = b})
  setmetatable(b, {__index = a, __newindex = a})
  local ok = pcall(function() a.x = 1 end)
  return a.x
end
