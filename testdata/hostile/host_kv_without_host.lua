-- expect: failed
-- error: kv.get is not available here
-- why: with no Host, every kv call must fail with a clear Lua error (catchable by pcall), never dereference a nil host
function handle(req)
  for _, f in ipairs({
    function() return kv.set("k", {a = 1}, {ttl = 1}) end,
    function() return kv.delete("k") end,
    function() return kv.incr("k", 1) end,
    function() return kv.list("", {limit = 10}) end,
  }) do
    local ok, e = pcall(f)
    if ok or not tostring(e):find("is not available here", 1, true) then error("unexpected: " .. tostring(e)) end
  end
  return kv.get("k")
end
