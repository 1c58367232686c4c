-- expect: succeeded
-- value: "ok"
-- why: the string metatable is the only one numbers-as-strings reach; indexing numbers, booleans and nil and calling string functions on odd values must give errors, not panics
function handle(req)
  for _, f in ipairs({
    function() return (1).x end,
    function() return (true):upper() end,
    function() return ("x"):nonexistent() end,
    function() return ("x")[1] end,
    function() return string.upper() end,
    function() return string.rep() end,
    function() return string.format() end,
    function() return string.gsub("x") end,
    function() return string.find() end,
    function() return ("x"):gsub(".", {}) end,
    function() return ("x"):gsub(".", true) end,
    function() return ("x"):gsub("(", "") end,
    function() return ("x"):gsub(".", "%2") end,
    function() return ("x"):gsub(".", "%") end,
    function() return ("x"):find("%") end,
    function() return ("x"):find("[a") end,
    function() return ("x"):find("%b") end,
    function() return ("x"):find("%f") end,
    function() return ("x"):find("(()") end,
    function() return ("x"):match(("()"):rep(40)) end,
  }) do
    pcall(f)
  end
  return "ok"
end
