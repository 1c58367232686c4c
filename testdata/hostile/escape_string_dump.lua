-- expect: failed
-- error: attempt to call
-- why: string.dump produces binary chunks, the input go-lua's undump trusts blindly
function handle(req)
  local f = function() return 1 end
  if ("").dump ~= nil then error("ESCAPE: string method dump exists") end
  return string.dump(f)
end
