-- expect: succeeded
-- value: "clean"
-- runs: 2
-- why: math.randomseed must only affect the calling invocation; otherwise a tenant could make another tenant's math.random predictable
function handle(req)
  local first = math.random()
  math.randomseed(42)
  local a = math.random()
  local b = math.random()
  math.randomseed(42)
  math.random()
  -- If the seed leaked, the next invocation's first draw would be b.
  if first == b or first == a then error("LEAK: random generator state from an earlier invocation") end
  return "clean"
end
