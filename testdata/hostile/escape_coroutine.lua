-- expect: failed
-- error: attempt to index
-- why: coroutines are not provided (go-lua lacks them); a script relying on them must fail cleanly, not crash
function handle(req)
  local co = coroutine.wrap(function() while true do coroutine.yield(1) end end)
  return co()
end
