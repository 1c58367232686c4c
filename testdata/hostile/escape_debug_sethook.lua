-- expect: failed
-- error: attempt to index
-- why: debug.sethook would replace the instruction-budget hook (and go-lua's panics with "XMove not implemented", escaping pcall)
function handle(req)
  local ok = pcall(function() return debug.gethook() end)
  if ok then error("ESCAPE: debug.gethook callable") end
  debug.sethook(function() end, "", 0)
  while true do end
end
