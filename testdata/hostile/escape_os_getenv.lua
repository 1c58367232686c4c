-- expect: failed
-- error: attempt to call
-- why: os.getenv would leak the worker's environment (database URL, secrets of the platform)
function handle(req)
  for _, name in ipairs({"DATABASE_URL", "PATH", "HOME", "PICLOUD_SANDBOX_CHILD"}) do
    if env[name] ~= nil or secrets[name] ~= nil then
      error("ESCAPE: process environment visible as env/secrets." .. name)
    end
  end
  return os.getenv("PATH")
end
