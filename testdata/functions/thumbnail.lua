-- thumbnail.lua: stands in for a bulk job enqueued with
-- picloud.invoke_many('thumbnail', ...) (docs/sql.md). It returns the item
-- it was given.
function handle(req)
  return {done = req.payload.i}
end
