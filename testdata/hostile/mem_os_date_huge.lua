-- expect: failed
-- error: too large
-- process-error: ran out of memory | memory limit exceeded
-- why: os.date expands every conversion (%c is 24 bytes): a 2 MB format would build a 24 MB string, a loop of them many more
function handle(req)
  return #os.date(("%c"):rep(1e6))
end
