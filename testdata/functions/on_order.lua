-- on_order.lua: called by the trigger picloud.invoke_trigger('on_order') on
-- every change of a table (docs/sql.md). The payload is
-- {op, schema, table, new, old}.
function handle(req)
  local p = req.payload
  log.info(p.op .. " on " .. p.schema .. "." .. p.table)
  return {op = p.op, new = p.new, old = p.old}
end
