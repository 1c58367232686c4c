package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/picloud/picloud/api"
	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/queue"
)

// platformFlags are shared by the roles that serve HTTP and run functions.
type platformFlags struct {
	Addr             string        `default:"127.0.0.1:8080" env:"PICLOUD_ADDR" help:"Address to serve HTTP on."`
	Concurrency      int           `env:"PICLOUD_CONCURRENCY" help:"Invocations run at once (default: number of CPUs)."`
	Sandbox          string        `default:"process" enum:"process,inprocess" env:"PICLOUD_SANDBOX" help:"Where Lua runs: process (supervised child processes with a memory limit) or inprocess (faster, but a script that exhausts memory takes the server down)."`
	SandboxMemory    int64         `default:"268435456" env:"PICLOUD_SANDBOX_MEMORY_BYTES" help:"Memory a sandbox process may map, in bytes; a script gets half of it as heap."`
	HTTPAllowPrivate bool          `name:"http-allow-private" env:"PICLOUD_HTTP_ALLOW_PRIVATE" help:"Let scripts reach loopback and private addresses that their http_allow names (off: SSRF protection)."`
	DrainTimeout     time.Duration `default:"30s" env:"PICLOUD_DRAIN_TIMEOUT" help:"On shutdown, how long running invocations may take to finish."`
	Migrate          bool          `default:"true" negatable:"" env:"PICLOUD_MIGRATE" help:"Apply migrations at start."`
}

type serveCmd struct {
	DatabaseURL string `name:"database-url" env:"DATABASE_URL" required:"" help:"PostgreSQL connection URL."`
	platformFlags
}

func (c *serveCmd) Run(ctx context.Context, logger *slog.Logger) error {
	if err := requireDatabaseURL(c.DatabaseURL); err != nil {
		return err
	}
	return runPlatform(ctx, logger, c.DatabaseURL, c.platformFlags, nil)
}

// openPool opens the pool every role uses.
func openPool(ctx context.Context, url string, maxConns int) (*pgxpool.Pool, error) {
	config, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	// pgxpool pings a connection that sat idle for a second before handing
	// it out: a round trip added to the first request after every pause,
	// and traffic on an idle system. A dead connection fails the query
	// instead, and pgxpool replaces it.
	config.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	if maxConns > 0 {
		config.MaxConns = int32(maxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, config)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return pool, nil
}

// runPlatform runs the all-in-one role until ctx ends. ready, if not nil,
// is called with the base URL once requests are served.
func runPlatform(ctx context.Context, logger *slog.Logger, databaseURL string, flags platformFlags, ready func(baseURL string)) error {
	concurrency := flags.Concurrency
	if concurrency <= 0 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	// Each running invocation holds a connection at its start and finish,
	// River keeps one for LISTEN and its fetches, and API requests need the
	// rest.
	pool, err := openPool(ctx, databaseURL, 2*concurrency+8)
	if err != nil {
		return err
	}
	defer pool.Close()
	if flags.Migrate {
		applied, err := queue.Migrate(ctx, pool)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if len(applied) > 0 {
			logger.Info("migrations applied", "versions", applied)
		}
	}

	sandboxes, err := newExecutor(flags, concurrency, logger)
	if err != nil {
		return err
	}
	defer sandboxes.Close()
	client, err := queue.NewClient(pool, queue.Config{
		Executor: sandboxes, Concurrency: concurrency, Logger: logger,
		HTTP: queue.HTTPConfig{AllowPrivate: flags.HTTPAllowPrivate},
	})
	if err != nil {
		return err
	}
	if err := client.Start(ctx); err != nil {
		return err
	}

	srv := &http.Server{
		Handler:           api.New(api.Config{Queue: client, Logger: logger}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", flags.Addr)
	if err != nil {
		_ = client.Stop(ctx)
		return fmt.Errorf("listen: %w", err)
	}
	baseURL := "http://" + ln.Addr().String()
	logger.Info("serving", "url", baseURL, "concurrency", concurrency)
	if ready != nil {
		ready(baseURL)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err = <-serveErr:
	case <-ctx.Done():
		logger.Info("shutting down", "drain_timeout", flags.DrainTimeout)
	}
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flags.DrainTimeout)
	defer cancel()
	// Stop accepting requests first; waiting /fn callers still get their
	// answers because the workers keep running until client.Stop.
	shutdownErr := srv.Shutdown(drainCtx)
	stopErr := client.Stop(drainCtx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, shutdownErr, stopErr)
}

// executorCloser is an executor the platform owns.
type executorCloser interface {
	queue.Executor
	Close()
}

func newExecutor(flags platformFlags, concurrency int, logger *slog.Logger) (executorCloser, error) {
	if flags.Sandbox == "inprocess" {
		return executor.NewPool(executor.Config{Size: concurrency, Logger: logger}), nil
	}
	return executor.NewSandboxes(executor.SandboxConfig{Processes: concurrency, MemoryLimit: flags.SandboxMemory, Logger: logger})
}

type migrateCmd struct {
	DatabaseURL string `name:"database-url" env:"DATABASE_URL" required:"" help:"PostgreSQL connection URL."`
}

func (c *migrateCmd) Run(ctx context.Context, logger *slog.Logger) error {
	if err := requireDatabaseURL(c.DatabaseURL); err != nil {
		return err
	}
	pool, err := openPool(ctx, c.DatabaseURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	applied, err := queue.Migrate(ctx, pool)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		logger.Info("database is up to date")
	} else {
		logger.Info("migrations applied", "versions", applied)
	}
	return nil
}

// requireDatabaseURL refuses an empty URL, which an exported but empty
// DATABASE_URL produces: pgx would read it as "the local defaults" and
// quietly connect to whatever server listens there.
func requireDatabaseURL(url string) error {
	if url == "" {
		return errors.New("no database: set DATABASE_URL or pass --database-url (or use picloud dev, which starts its own)")
	}
	return nil
}
