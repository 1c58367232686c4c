-- expect: succeeded
-- value: "clean"
-- runs: 2
-- why: rewrites string methods every way a script can (overlay fields, rawset, the shared string metatable); methods see the overlay, as in Lua, but the next invocation must still see the real ones
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
  -- Within this invocation the overlay shows the changes, and so do methods,
  -- as in Lua; removing a field does not hide the library's.
  if string.upper("x") ~= "pwned" then error("overlay write lost") end
  if ("x"):upper() ~= "pwned" or ("x"):rep(2) ~= "pwned" then error("string methods do not see the overlay") end
  if ("a"):len() ~= 1 then error("removed field hid the library's") end
  return "clean"
end
