-- hello.lua: greets the caller in plain text.
-- GET /fn/hello?name=Ada returns "Hello, Ada!", as does an API invocation
-- with the payload {"name": "Ada"}; without a name, "Hello, world!".
-- Logs one line ("greeting <name>") per call.
function handle(req)
  local name = req.query.name or (type(req.payload) == "table" and req.payload.name) or "world"
  print("greeting " .. name)
  return "Hello, " .. name .. "!"
end
