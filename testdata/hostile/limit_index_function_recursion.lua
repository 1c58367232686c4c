-- expect: failed
-- error: stack overflow
-- why: an __index function that indexes its own table recurses through Go (each metamethod call is a Go call); go-lua must stop it at its Go call limit before Go's own stack overflows fatally
function handle(req)
  local t
  t = setmetatable({}, {__index = function(self, k) return self[k] end})
  return t.x
end
