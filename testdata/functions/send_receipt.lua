-- send_receipt.lua: the follow-up of an order, enqueued from SQL with
-- picloud.invoke('send_receipt', '{"order": 42}') (docs/sql.md). It logs
-- the order and returns what a real one would send.
function handle(req)
  local order = req.payload and req.payload.order
  if order == nil then
    error("payload needs an order, e.g. {\"order\": 42}")
  end
  log.info("receipt for order " .. tostring(order), {trigger = req.trigger, attempt = req.attempt})
  return {order = order, sent = true}
end
