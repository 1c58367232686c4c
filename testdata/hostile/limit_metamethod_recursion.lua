-- expect: failed
-- error: stack overflow
-- why: __eq, __lt, __len, __concat and __call that re-enter themselves each recurse through Go calls; all must end as errors
function handle(req)
  local mt = {}
  mt.__eq = function(a, b) return a == b end
  mt.__lt = function(a, b) return a < b end
  mt.__le = function(a, b) return a <= b end
  mt.__len = function(a) return #a end
  mt.__concat = function(a, b) return a .. b end
  mt.__unm = function(a) return -a end
  local a, b = setmetatable({}, mt), setmetatable({}, mt)
  local errors = {}
  for _, f in ipairs({
    function() return a == b end, function() return a < b end, function() return a <= b end,
    function() return #a end, function() return a .. b end, function() return -a end,
  }) do
    local ok, e = pcall(f)
    if ok or not tostring(e):find("stack overflow") then error("unexpected: " .. tostring(e)) end
  end
  return a == b
end
