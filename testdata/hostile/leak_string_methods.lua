-- expect: succeeded
-- value: "clean"
-- runs: 2
-- why: rewrites string methods every way a script can (overlay fields, rawset, the shared string metatable); the next invocation must still see the real ones
function handle(req)
  -- Run 2 fails here if run 1's changes survived.
  if ("abc"):upper() ~= "ABC" or ("abc"):rep(2) ~= "abcabc" or string.upper("x") ~= "X" or ("a"):len() ~= 1 then
    error("LEAK: string methods changed by an earlier invocation")
  end
  string.upper = function() return "pwned" end
  rawset(string, "rep", function() return "pwned" end)
  string.len = nil
  pcall(function() getmetatable("").__index.upper = function() return "pwned" end end)
  pcall(function() getmetatable("").__index = {} end)
  pcall(setmetatable, "", {__index = {upper = function() return "pwned" end}})
  pcall(rawset, getmetatable(""), "__index", {})
  -- Within this invocation the overlay shows the change, methods do not.
  if string.upper("x") ~= "pwned" then error("overlay write lost") end
  if ("x"):upper() ~= "X" then error("string method changed through the overlay") end
  return "clean"
end
