-- expect: failed
-- error: pattern too complex | malformed pattern
-- why: deeply nested pattern items recurse in the matcher; the depth must be capped with an error, not a Go stack overflow
function handle(req)
  local p = ("("):rep(100000) .. ("a"):rep(10) .. (")"):rep(100000)
  local ok, e = pcall(string.find, "aaaaaaaaaa", p)
  if ok then error("matched a 100000-level pattern") end
  return ("a"):rep(1000):find(("a?"):rep(100000) .. ("a"):rep(1000))
end
