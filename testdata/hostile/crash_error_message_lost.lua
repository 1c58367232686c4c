-- expect: failed
-- error: field 'year' is out-of-bound
-- why: a Go library function that raises an error while a deferred Pop is pending lost its message (os.time reported "1e+300", http.request a table); errors must carry their text
function handle(req)
  local ok, e = pcall(os.time, {year = 1e300, month = 1, day = 1})
  if type(e) ~= "string" or not e:find("out-of-bound", 1, true) then error("os.time error value: " .. tostring(e)) end
  ok, e = pcall(http.request, {url = {}})
  if type(e) ~= "string" then error("http.request error value is a " .. type(e)) end
  return os.time({year = 1e300, month = 1, day = 1})
end
