-- expect: failed
-- error: stack overflow
-- why: __tostring calling tostring on itself recurses through Go (print -> tostring -> __tostring -> ...)
function handle(req)
  local t
  t = setmetatable({}, {__tostring = function(self) return "<" .. tostring(self) .. ">" end})
  print(t)
  return "printed"
end
