-- expect: succeeded
-- value: "clean"
-- runs: 2
-- why: rawset/rawget bypass metatables, so they are the way to reach past a library overlay to the shared table; a later invocation must not see the writes
function handle(req)
  if rawget(string, "format") ~= nil or rawget(table, "sort") ~= nil or rawget(math, "floor") ~= nil then
    error("LEAK: a rawset from an earlier invocation is visible")
  end
  if type(string.format) ~= "function" or type(table.sort) ~= "function" or math.floor(1.5) ~= 1 then
    error("LEAK: library function replaced")
  end
  rawset(string, "format", function() return "pwned" end)
  rawset(table, "sort", false)
  rawset(math, "floor", function() return 42 end)
  rawset(_G, "leaked", true)
  if math.floor(1.5) ~= 42 then error("rawset did not reach the overlay") end
  return "clean"
end
