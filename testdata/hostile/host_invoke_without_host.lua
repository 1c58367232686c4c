-- expect: failed
-- error: picloud.invoke is not available here
-- why: invoking another function (possibly itself, in a loop) needs the Host; without one it fails cleanly
function handle(req)
  for i = 1, 100 do pcall(picloud.invoke, "self", {depth = i}) end
  return picloud.invoke("self", {depth = 0}, {idempotency_key = "k", delay = 1})
end
