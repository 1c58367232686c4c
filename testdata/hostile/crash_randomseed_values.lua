-- expect: succeeded
-- value: "ok"
-- why: math.randomseed and math.random with NaN, infinities and huge numbers must not panic or hang, and random must stay in range
function handle(req)
  for _, seed in ipairs({0/0, 1/0, -1/0, 2^63, -2^63, 1e300, 0.5}) do
    math.randomseed(seed)
    local r = math.random()
    if r < 0 or r >= 1 then error("math.random() out of range: " .. r) end
    local k = math.random(1, 10)
    if k < 1 or k > 10 or k % 1 ~= 0 then error("math.random(1, 10) gave " .. k) end
  end
  for _, args in ipairs({{0/0}, {0}, {2, 1}, {1, 0/0}}) do
    pcall(math.random, table.unpack(args))
  end
  return "ok"
end
