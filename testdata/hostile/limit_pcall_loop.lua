-- expect: timed_out
-- error: instruction budget | timed out
-- why: pcall catches errors; it must not catch the limit's abort, or the outer loop would run forever
function handle(req)
  while true do
    pcall(function() while true do end end)
    pcall(pcall, pcall, function() while true do end end)
  end
end
