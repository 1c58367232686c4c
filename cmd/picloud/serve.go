package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/picloud/picloud/api"
	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/hostapi"
	"github.com/picloud/picloud/internal/metrics"
	"github.com/picloud/picloud/internal/tracing"
	"github.com/picloud/picloud/internal/version"
	"github.com/picloud/picloud/queue"
)

// nodeFlags are shared by every long-running role.
type nodeFlags struct {
	DrainTimeout time.Duration `default:"30s" env:"PICLOUD_DRAIN_TIMEOUT" help:"On shutdown, how long running invocations may take to finish before they are handed back to the queue."`
	Migrate      bool          `default:"true" negatable:"" env:"PICLOUD_MIGRATE" help:"Apply migrations at start (safe with several nodes starting at once)."`
	MetricsAddr  string        `env:"PICLOUD_METRICS_ADDR" help:"Also serve Prometheus /metrics on this address, without an API key: for a private network (none when empty)."`
}

// apiFlags configure the HTTP side.
type apiFlags struct {
	Addr         string        `default:"127.0.0.1:8080" env:"PICLOUD_ADDR" help:"Address to serve HTTP on."`
	MaxBodyBytes int64         `default:"6291456" env:"PICLOUD_MAX_BODY_BYTES" help:"Largest request body /fn accepts, in bytes (REST API bodies are capped at 1 MiB)."`
	ReadTimeout  time.Duration `default:"1m" env:"PICLOUD_READ_TIMEOUT" help:"Longest a client may take to send a request, body included."`
	WriteTimeout time.Duration `default:"17m" env:"PICLOUD_WRITE_TIMEOUT" help:"Longest a response may take, from the end of its request's headers; it must exceed the longest function timeout (15m) for synchronous calls to get their answer."`
	// The metrics name every function: on the API address they need an
	// admin key unless the operator says the address is private.
	MetricsPublic bool `env:"PICLOUD_METRICS_PUBLIC" help:"Serve /metrics on --addr without an API key (by default it needs an admin key there; --metrics-addr never does)."`

	// noAuth lets every request through without an API key; only dev sets
	// it.
	noAuth bool
}

// workerFlags configure the side that runs functions.
type workerFlags struct {
	Concurrency      int    `env:"PICLOUD_CONCURRENCY" help:"Invocations run at once, each in its own sandbox (default: number of CPUs)."`
	Sandbox          string `default:"process" enum:"process,inprocess" env:"PICLOUD_SANDBOX" help:"Where Lua runs: process (supervised child processes with a memory limit) or inprocess (faster, but a script that exhausts memory takes the server down)."`
	SandboxMemory    int64  `default:"268435456" env:"PICLOUD_SANDBOX_MEMORY_BYTES" help:"Memory a sandbox process may map, in bytes; a script gets half of it as heap."`
	HTTPAllowPrivate bool   `name:"http-allow-private" env:"PICLOUD_HTTP_ALLOW_PRIVATE" help:"Let scripts reach loopback, private and other special-purpose addresses that their http_allow names (off: SSRF protection)."`
	NodeID           string `env:"PICLOUD_NODE_ID" help:"Name of this worker in River's job rows (attempted_by); default: host name and process id."`
}

func (f workerFlags) concurrency() int {
	if f.Concurrency > 0 {
		return f.Concurrency
	}
	return runtime.GOMAXPROCS(0)
}

// node is what a role runs: an HTTP API, a worker, or both.
type node struct {
	api    *apiFlags    // nil: no API
	worker *workerFlags // nil: runs nothing
	// healthAddr serves /healthz and /readyz on a worker without an API.
	healthAddr string
	nodeFlags
	// bound holds the listeners when the caller bound them already (dev,
	// before it starts PostgreSQL); nil: run binds them first thing.
	bound *listeners
}

// listeners are a node's HTTP addresses, bound before anything slow
// (initdb, connecting, migrating) so that an address in use is reported at
// once, and handed to the servers, so nothing can take the address in
// between.
type listeners struct {
	http    net.Listener // the API, or a worker's health address; nil: none
	metrics net.Listener // --metrics-addr; nil: none
}

// bind binds every address the node serves HTTP on.
func (n node) bind() (*listeners, error) {
	l := &listeners{}
	var err error
	switch {
	case n.api != nil:
		l.http, err = listenOn(n.api.Addr, "--addr (PICLOUD_ADDR)")
	case n.healthAddr != "":
		l.http, err = listenOn(n.healthAddr, "--health-addr (PICLOUD_HEALTH_ADDR)")
	}
	if err != nil {
		return nil, err
	}
	if n.MetricsAddr != "" {
		l.metrics, err = listenOn(n.MetricsAddr, "--metrics-addr (PICLOUD_METRICS_ADDR)")
		if err != nil {
			l.close()
			return nil, err
		}
	}
	return l, nil
}

// close closes the listeners no server took over (a server closes its own
// at shutdown; closing again is harmless).
func (l *listeners) close() {
	for _, ln := range []net.Listener{l.http, l.metrics} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// listenOn binds addr, with an error that names the setting and, for the
// common case, says what to do in one line.
func listenOn(addr, setting string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("%s is already in use (%s): another process is listening there; stop it or choose another address", addr, setting)
	case err != nil:
		return nil, fmt.Errorf("listen on %s (%s): %w", addr, setting, err)
	}
	return ln, nil
}

// role names the node in its spans.
func (n node) role() string {
	switch {
	case n.api != nil && n.worker != nil:
		return "serve"
	case n.api != nil:
		return "api"
	default:
		return "worker"
	}
}

// nodeID names a worker in River's job rows (attempted_by) and any node in
// its spans.
func (n node) nodeID() string {
	if n.worker != nil && n.worker.NodeID != "" {
		return n.worker.NodeID
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", host, os.Getpid())
}

type serveCmd struct {
	DatabaseURL string `name:"database-url" env:"DATABASE_URL" help:"PostgreSQL connection URL."`
	nodeFlags
	apiFlags
	workerFlags
}

func (c *serveCmd) Run(ctx context.Context, logger *slog.Logger) error {
	if err := requireDatabaseURL(c.DatabaseURL); err != nil {
		return err
	}
	return node{api: &c.apiFlags, worker: &c.workerFlags, nodeFlags: c.nodeFlags}.run(ctx, logger, c.DatabaseURL, nil)
}

type apiCmd struct {
	DatabaseURL string `name:"database-url" env:"DATABASE_URL" help:"PostgreSQL connection URL."`
	nodeFlags
	apiFlags
}

func (c *apiCmd) Run(ctx context.Context, logger *slog.Logger) error {
	if err := requireDatabaseURL(c.DatabaseURL); err != nil {
		return err
	}
	return node{api: &c.apiFlags, nodeFlags: c.nodeFlags}.run(ctx, logger, c.DatabaseURL, nil)
}

type workerCmd struct {
	DatabaseURL string `name:"database-url" env:"DATABASE_URL" help:"PostgreSQL connection URL."`
	HealthAddr  string `env:"PICLOUD_HEALTH_ADDR" help:"Address to serve /healthz and /readyz on (none when empty)."`
	nodeFlags
	workerFlags
}

func (c *workerCmd) Run(ctx context.Context, logger *slog.Logger) error {
	if err := requireDatabaseURL(c.DatabaseURL); err != nil {
		return err
	}
	return node{worker: &c.workerFlags, healthAddr: c.HealthAddr, nodeFlags: c.nodeFlags}.run(ctx, logger, c.DatabaseURL, nil)
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

// executorCloser is an executor the node owns.
type executorCloser interface {
	queue.Executor
	Usage() (busy, capacity int)
	Close()
}

func newExecutor(flags workerFlags, logger *slog.Logger) (executorCloser, error) {
	if flags.Sandbox == "inprocess" {
		return executor.NewPool(executor.Config{Size: flags.concurrency(), Logger: logger}), nil
	}
	return executor.NewSandboxes(executor.SandboxConfig{Processes: flags.concurrency(), MemoryLimit: flags.SandboxMemory, Logger: logger})
}

// run runs the node until ctx ends, then drains it. ready, if not nil, is
// called with the base URL once HTTP is served.
func (n node) run(ctx context.Context, logger *slog.Logger, databaseURL string, ready func(baseURL string)) error {
	bound := n.bound
	if bound == nil {
		var err error
		if bound, err = n.bind(); err != nil {
			return err
		}
	}
	defer bound.close()
	// Each running invocation holds a connection at its start and finish,
	// River keeps one for LISTEN and its fetches, and API requests need the
	// rest.
	maxConns := 8
	if n.worker != nil {
		maxConns += 2 * n.worker.concurrency()
	}
	build := version.Get()
	logger.Info("starting", "version", build.Version, "commit", build.Commit, "go", build.GoVersion)
	pool, err := openPool(ctx, databaseURL, maxConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	if n.Migrate {
		applied, err := queue.Migrate(ctx, pool)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if len(applied) > 0 {
			logger.Info("migrations applied", "versions", applied)
		}
	}

	// The registry exists whether or not anything serves it: updating it
	// costs nanoseconds and no statement.
	m := metrics.New(logger)
	m.WatchPool(pool)
	config := queue.Config{Logger: logger, Observer: m}
	if tracing.Configured(os.Getenv) {
		provider, shutdown, err := tracing.Start(ctx, logger, tracing.Options{Role: n.role(), InstanceID: n.nodeID(), Version: api.Version})
		if err != nil {
			return err
		}
		defer func() {
			// Spans still batched are sent now, or dropped after a while.
			flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := shutdown(flushCtx); err != nil {
				logger.Warn("tracing: flush", "error", err)
			}
		}()
		config.TracerProvider = provider
	}
	var sandboxes executorCloser
	if n.worker != nil {
		sandboxes, err = newExecutor(*n.worker, logger)
		if err != nil {
			return err
		}
		defer sandboxes.Close()
		config.Executor = sandboxes
		config.Concurrency = n.worker.concurrency()
		config.HTTP = hostapi.HTTPConfig{AllowPrivate: n.worker.HTTPAllowPrivate}
		config.ID = n.nodeID()
	}
	client, err := queue.NewClient(pool, config)
	if err != nil {
		return err
	}
	m.WatchQueue(client)
	if sandboxes != nil {
		m.WatchWorker(client, sandboxes)
	}
	if err := client.Start(ctx); err != nil {
		return err
	}

	var handler http.Handler
	switch {
	case n.api != nil:
		if n.api.noAuth {
			logger.Warn("AUTHENTICATION IS OFF: anyone who can reach " + n.api.Addr + " may deploy and run code; never expose this node (run dev --auth to turn keys on)")
		}
		functions := catalog.New(pool)
		handler = api.New(api.Config{
			Invocations: client, Events: client, Stats: client, Ready: client,
			Functions: functions, Env: functions, Schedules: functions, Keys: client.Keys(),
			Logger: logger, DisableAuth: n.api.noAuth, MaxBodyBytes: n.api.MaxBodyBytes,
			Metrics: m.Handler(), MetricsPublic: n.api.MetricsPublic, TracerProvider: config.TracerProvider,
		})
	case n.healthAddr != "":
		handler = api.NewHealth(client, logger, m.Handler())
	}
	var servers []*http.Server
	serveErr := make(chan error, 2)
	// listen serves handler on ln until shutdown.
	listen := func(ln net.Listener, handler http.Handler, readTimeout, writeTimeout time.Duration) string {
		srv := &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
		servers = append(servers, srv)
		go func() { serveErr <- srv.Serve(ln) }()
		return "http://" + ln.Addr().String()
	}
	stopServers := func(ctx context.Context) error {
		var errs []error
		for _, srv := range servers {
			errs = append(errs, srv.Shutdown(ctx))
		}
		return errors.Join(errs...)
	}
	if bound.metrics != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", m.Handler())
		metricsURL := listen(bound.metrics, mux, 30*time.Second, time.Minute)
		logger.Info("serving metrics", "url", metricsURL+"/metrics")
	}
	if handler != nil {
		readTimeout, writeTimeout := time.Minute, 17*time.Minute
		if n.api != nil {
			readTimeout, writeTimeout = n.api.ReadTimeout, n.api.WriteTimeout
		}
		baseURL := listen(bound.http, handler, readTimeout, writeTimeout)
		logger.Info("serving", "url", baseURL, "api", n.api != nil, "worker", n.worker != nil, "concurrency", config.Concurrency)
		if ready != nil {
			ready(baseURL)
		}
	} else {
		logger.Info("working", "concurrency", config.Concurrency)
	}

	select {
	case err = <-serveErr:
	case <-ctx.Done():
		logger.Info("shutting down", "drain_timeout", n.DrainTimeout)
	}
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.DrainTimeout)
	defer cancel()
	// Stop accepting requests first; waiting /fn callers still get their
	// answers because the workers keep running until client.Stop, which
	// hands back to the queue whatever is still running at the deadline.
	shutdownErr := stopServers(drainCtx)
	stopErr := client.Stop(drainCtx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, shutdownErr, stopErr)
}

type migrateCmd struct {
	DatabaseURL string `name:"database-url" env:"DATABASE_URL" help:"PostgreSQL connection URL."`
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
