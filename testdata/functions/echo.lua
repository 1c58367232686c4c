-- echo.lua: returns the request as JSON with status 200: method, path, query,
-- the content-type header, and the body decoded with json.decode when one is
-- sent (a body that is not JSON is a runtime error).
function handle(req)
  local body = nil
  if req.body ~= "" then
    body = json.decode(req.body)
  end
  return {
    status = 200,
    body = {
      method = req.method,
      path = req.path,
      query = req.query,
      headers = { ["content-type"] = req.headers["content-type"] },
      body = body,
    },
  }
end
