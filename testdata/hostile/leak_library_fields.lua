-- expect: succeeded
-- value: "clean"
-- runs: 2
-- why: sets and deletes fields of string, table, math, os, json and the helper libraries; none of it may be visible to the next invocation
function handle(req)
  local libs = {string = string, table = table, math = math, os = os, json = json, bit32 = bit32,
    log = log, base64 = base64, hex = hex, crypto = crypto, uuid = uuid, time = time}
  for name, lib in pairs(libs) do
    if rawget(lib, "pwned") ~= nil or lib.pwned ~= nil then
      error("LEAK: " .. name .. ".pwned survived")
    end
  end
  if math.pi < 3.14 or type(table.insert) ~= "function" or type(os.time) ~= "function" or type(json.encode) ~= "function" then
    error("LEAK: a library field was replaced or removed")
  end
  for name, lib in pairs(libs) do
    lib.pwned = true
    for k in pairs(lib) do
      if k ~= "pwned" then lib[k] = nil end
    end
  end
  math.pi = 3
  table.insert = nil
  os.time = function() return 0 end
  json.encode = nil
  return "clean"
end
