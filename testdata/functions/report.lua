-- report.lua: a job for schedules and delayed runs (docs/sql.md,
-- docs/api.md). It counts its runs per kind in kv and returns the count.
function handle(req)
  local kind = (type(req.payload) == "table" and req.payload.kind) or "adhoc"
  local n = kv.incr("runs:" .. kind)
  log.info("report", {kind = kind, run = n, trigger = req.trigger})
  return {kind = kind, run = n}
end
