-- expect: failed
-- error: nesting too deep
-- why: json.encode of a table nested 100000 levels deep would recurse in Go without end
function handle(req)
  local t = {}
  for i = 1, 100000 do t = {t} end
  return json.encode(t)
end
