-- expect: failed
-- error: (a boolean value)
-- why: the string metatable is shared by every string in the state; reaching its __index would let a script rewrite the string methods of later invocations
function handle(req)
  if pcall(setmetatable, "", {}) then error("ESCAPE: string metatable replaced") end
  if pcall(rawset, getmetatable(""), "__index", {}) then error("ESCAPE: rawset on string metatable") end
  getmetatable("").__index.upper = function() return "pwned" end
  return "poisoned"
end
