-- expect: failed
-- error: nesting too deep
-- why: the body is the script's to decode; a deeply nested body must fail json.decode cleanly
function handle(req)
  local body = ('{"a":['):rep(50000) .. ("]}"):rep(50000)
  return json.decode(body)
end
