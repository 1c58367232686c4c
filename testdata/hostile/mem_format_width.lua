-- expect: failed
-- error: invalid format
-- why: a C printf honours any width, so "%99999999d" would allocate 100 MB per conversion
function handle(req)
  return string.format("%99999999d", 1)
end
