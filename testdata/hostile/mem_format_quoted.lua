-- expect: failed
-- error: too large
-- process-error: ran out of memory | memory limit exceeded
-- why: %q writes a control byte as up to four bytes, so one conversion of a 16 MiB string would build 64 MB
function handle(req)
  return #string.format("%q", ("\0"):rep(16e6))
end
