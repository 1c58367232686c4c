-- expect: failed
-- error: http.request is not available here
-- why: outbound HTTP must go through the Host; without one it fails cleanly, and argument checks come first
function handle(req)
  local ok, e = pcall(http.request, {url = {}})
  if ok or not tostring(e):find("url must be a string", 1, true) then error("unexpected: " .. tostring(e)) end
  ok, e = pcall(http.request, "http://example.com")
  if ok then error("http.request accepted a string") end
  return http.request({url = "http://169.254.169.254/latest/meta-data/", headers = {x = "y"}, body = "b"})
end
