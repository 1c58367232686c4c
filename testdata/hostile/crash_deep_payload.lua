-- expect: failed
-- error: request payload | nesting too deep
-- payload: deep_payload.json
-- why: a request payload nested 20000 levels deep is decoded into req.payload before handle runs; it must fail cleanly, not overflow
function handle(req)
  return req.payload
end
