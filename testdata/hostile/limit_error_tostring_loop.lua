-- expect: timed_out
-- error: instruction budget | timed out
-- why: an error object whose __tostring loops: the executor calls __tostring when it describes the uncaught error, which must be under the budget too
function handle(req)
  error(setmetatable({}, {__tostring = function() while true do end end}))
end
