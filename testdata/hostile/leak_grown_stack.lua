-- expect: succeeded
-- value: 100000
-- why: a deep recursion that returns normally grows go-lua's stack and call frames for good (some 17 MiB for 100,000 levels); the state must be replaced, not handed to the next invocation (TestHostileGrownStateReplaced checks that)
local function depth(n)
  if n == 0 then return 0 end
  return 1 + depth(n - 1)
end
function handle(req)
  local n = select("#", table.unpack({}, 1, 300000))
  return depth(100000)
end
