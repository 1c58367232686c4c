-- expect: failed
-- error: stack overflow
-- why: a gsub replacement function that calls gsub recurses through Go
local function f(s) return (s:gsub(".", f)) end
function handle(req)
  return f("abc")
end
