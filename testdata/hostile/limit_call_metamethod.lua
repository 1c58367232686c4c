-- expect: timed_out
-- error: instruction budget | timed out
-- why: a table whose __call calls itself (a tail call) or whose __call is itself must not loop inside the VM where no hook runs
function handle(req)
  local t = {}
  setmetatable(t, {__call = t})
  if pcall(t) then error("a table with itself as __call was called") end
  local u
  u = setmetatable({}, {__call = function(self) return self() end})
  return u()
end
