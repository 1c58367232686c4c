// Command picloud runs the PiCloud platform: upload a Lua script, get an
// HTTP endpoint, on one binary and one PostgreSQL database.
//
// Subcommands pick the role: dev (all-in-one with a private database),
// serve (all-in-one against DATABASE_URL), migrate and openapi.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	// Schedules name IANA time zones; a static binary in a bare container
	// has no zone database of its own.
	_ "time/tzdata"

	"github.com/alecthomas/kong"

	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/internal/version"
)

type cli struct {
	Log         logFlags         `embed:"" prefix:"log-"`
	VersionFlag kong.VersionFlag `name:"version" help:"Print the version, commit, build time, Go version and platform, and exit."`

	Dev     devCmd     `cmd:"" help:"Run everything in one process on a private PostgreSQL cluster (or DATABASE_URL), for a laptop."`
	Serve   serveCmd   `cmd:"" help:"Run everything in one process against DATABASE_URL."`
	API     apiCmd     `cmd:"" name:"api" help:"Serve the REST API and /fn against DATABASE_URL; run no functions (workers do)."`
	Worker  workerCmd  `cmd:"" help:"Run functions against DATABASE_URL; serve no API. Start as many as needed."`
	Migrate migrateCmd `cmd:"" help:"Apply database migrations; idempotent and safe when several processes run it at once."`
	OpenAPI openapiCmd `cmd:"" name:"openapi" help:"Write the OpenAPI documents (3.1 and 3.0)."`
	Stats   statsCmd   `cmd:"" help:"Measurements: what an idle node costs."`
	Fn      fnCmd      `cmd:"" name:"fn" help:"Deploy, list, show and delete functions on a server."`
	Invoke  invokeCmd  `cmd:"" help:"Invoke a function through the API and print its result (or, with --async, its invocation id)."`
	Inv     invCmd     `cmd:"" name:"inv" help:"Show, list and cancel invocations."`
	Logs    logsCmd    `cmd:"" help:"Print the log lines of an invocation."`
	Keys    keysCmd    `cmd:"" help:"Create, list and revoke API keys, straight in the database (DATABASE_URL)."`
	Init    initCmd    `cmd:"" help:"Write a starter project: picloud.yaml and a hello function."`
	Apply   applyCmd   `cmd:"" help:"Make the server match a project's picloud.yaml: show the changes, then apply them."`
	Pull    pullCmd    `cmd:"" help:"Write a picloud.yaml and the functions' sources from a live server."`
	Secrets secretsCmd `cmd:"" help:"Set, list and delete a function's secrets through the API."`
	Version versionCmd `cmd:"" help:"Print the version, commit, build time, Go version and platform."`
}

type logFlags struct {
	Level  slog.Level `default:"info" env:"PICLOUD_LOG_LEVEL" help:"Log level: debug, info, warn or error."`
	Format string     `default:"text" enum:"text,json" env:"PICLOUD_LOG_FORMAT" help:"Log format: text or json."`
}

func (f logFlags) logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: f.Level}
	if f.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func main() {
	// A sandbox child is this binary started again by the worker; it must
	// become one before anything else runs.
	executor.RunSandboxIfChild()
	var c cli
	kctx := parse(&c, os.Args[1:])
	ctx, stop := signalContext()
	defer stop()
	if err := run(ctx, kctx, c.Log.logger()); err != nil {
		fmt.Fprintln(os.Stderr, "picloud:", err)
		os.Exit(exitCode(err))
	}
}

// signalContext ends on SIGINT or SIGTERM, which start a graceful shutdown.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func kongOptions() []kong.Option {
	return []kong.Option{
		kong.Name("picloud"),
		kong.Description("PiCloud: upload a Lua script, get an HTTP endpoint."),
		kong.Vars{"version": version.Get().String()},
	}
}

// run runs the parsed command until ctx ends.
func run(ctx context.Context, kctx *kong.Context, logger *slog.Logger) error {
	kctx.BindTo(ctx, (*context.Context)(nil))
	kctx.Bind(logger)
	return kctx.Run()
}
