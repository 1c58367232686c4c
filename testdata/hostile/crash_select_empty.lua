-- expect: failed
-- error: internal error in the Lua runtime
-- why: go-lua's select("") indexes out of range in Go; the panic must be contained (even under pcall), reported, and the state replaced
function handle(req)
  local ok = pcall(select, "")
  return select("", 1, 2)
end
