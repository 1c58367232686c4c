-- expect: failed
-- error: too large
-- process-error: ran out of memory | memory limit exceeded
-- why: gsub's replacement multiplies the subject's size; the result must be capped while it is built
function handle(req)
  local s = ("a"):rep(1e6)
  return #s:gsub("a", ("b"):rep(1000))
end
