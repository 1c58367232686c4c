-- expect: failed
-- error: nesting too deep
-- why: json.decode of a document nested a million levels deep would recurse in Go and push a Lua table per level
function handle(req)
  local ok, e = pcall(json.decode, ('{"a":'):rep(1e6) .. "1" .. ("}"):rep(1e6))
  if ok then error("decoded a million levels") end
  return json.decode(("["):rep(1e6) .. ("]"):rep(1e6))
end
