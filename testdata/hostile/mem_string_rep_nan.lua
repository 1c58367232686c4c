-- expect: succeeded
-- value: [0,0,0]
-- why: string.rep with a NaN or infinite count must not reach a Go panic (NaN converts to a huge negative int)
function handle(req)
  return {#string.rep("x", 0/0), #string.rep("x", -1/0), #string.rep("x", 0/0, ",")}
end
