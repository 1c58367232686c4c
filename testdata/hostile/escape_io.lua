-- expect: failed
-- error: attempt to index
-- why: the io library reads and writes host files and stdout (the sandbox's wire protocol)
function handle(req)
  if io ~= nil or rawget(_G, "io") ~= nil or string.io ~= nil then
    error("ESCAPE: io reachable")
  end
  local f = io.open("/etc/passwd", "r")
  return f:read("*a")
end
