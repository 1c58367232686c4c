-- expect: failed
-- error: kv.set
-- why: arguments that cannot become JSON (functions, cycles, NaN) must be refused before any host call
function handle(req)
  local t = {}
  t.self = t
  local ok, e = pcall(kv.set, "k", t)
  if ok then error("encoded a cycle") end
  ok, e = pcall(picloud.invoke, "f", {print})
  if ok then error("encoded a function") end
  return kv.set("k", 0/0)
end
