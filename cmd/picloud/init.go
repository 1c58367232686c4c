package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/alecthomas/kong"
)

type initCmd struct {
	Dir string `arg:"" optional:"" default:"." help:"Folder to write the project into (default: the current one); created if missing."`
}

// starterManifest is what picloud init writes: one function, with the
// fields a new project most often needs shown commented out.
const starterManifest = `# PiCloud project manifest: picloud apply makes the server match it.
# Every field is described in docs/manifest.md.
functions:
  hello:
    file: functions/hello.lua   # Lua source defining handle(req)
    timeout: 5s                 # wall-clock limit of one attempt
    auth: public                # public, or key: only callers with an API key
    # http_allow: [api.example.com]   # hosts http.request may reach
    # max_concurrency: 10
    # expose_errors: false      # show Lua errors to callers without a key
    env:
      GREETING: Hello
    # secrets: [API_TOKEN]      # names only: apply takes a missing value from $API_TOKEN
    # schedules:
    #   nightly:
    #     cron: "0 3 * * *"
    #     timezone: Europe/Berlin
    #     payload: {name: cron}
`

const starterFunction = `-- hello: answers "Hello, <name>!" using the GREETING from the manifest's env.
function handle(req)
  local name = req.query.name or (req.payload and req.payload.name) or "world"
  log.info("greeting " .. name)
  return (env.GREETING or "Hello") .. ", " .. name .. "!"
end
`

func (c *initCmd) Run(_ context.Context, kctx *kong.Context) error {
	manifestPath := filepath.Join(c.Dir, manifestFile)
	source := filepath.Join(c.Dir, "functions", "hello.lua")
	for _, p := range []string{manifestPath, source} {
		if _, err := os.Stat(p); err == nil {
			return withExitCode(exitUsage, fmt.Errorf("%s exists; init writes only into a new project", p))
		}
	}
	if err := os.MkdirAll(filepath.Dir(source), 0o755); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := os.WriteFile(source, []byte(starterFunction), 0o644); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := os.WriteFile(manifestPath, []byte(starterManifest), 0o644); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	fmt.Fprintf(kctx.Stdout, "wrote %s and %s\nnext: picloud apply %s && picloud invoke hello\n", manifestPath, source, c.Dir)
	return nil
}
