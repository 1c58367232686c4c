-- expect: failed
-- error: invalid option '%' to 'format'
-- why: go-lua's string.format("%") indexes past the end of the format; the replacement must give a Lua error
function handle(req)
  local ok, e = pcall(string.format, "%")
  if ok then error("formatted a lone %") end
  for _, f in ipairs({"%5", "%.", "%-", "%#", "%5.", "%99.99", "%10.3"}) do
    if pcall(string.format, f, 1) then error("formatted " .. f) end
  end
  return string.format("%", 1)
end
