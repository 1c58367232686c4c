-- greet.lua: greets the caller by the name in the payload, or the query
-- string when called over HTTP, and logs who it greeted.
function handle(req)
  local name = (req.payload and req.payload.name) or req.query.name or "world"
  log.info("greeting", {name = name})
  return "Hello, " .. name .. "!"
end
