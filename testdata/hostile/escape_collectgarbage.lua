-- expect: failed
-- error: attempt to call
-- why: collectgarbage stops the world of the whole worker, and "count" reveals the process heap (other tenants' memory use)
function handle(req)
  for i = 1, 1000 do collectgarbage("collect") end
  return collectgarbage("count")
end
