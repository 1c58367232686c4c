// Package platformtest boots PiCloud in-process for the project's own tests:
// a fresh migrated database per test, and the whole platform (executor,
// queue, API) on a free port. Run starts the same for a runnable example,
// which has no testing.TB.
//
// Test packages that use it call dbtest.Main from TestMain.
package platformtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"

	"github.com/picloud/picloud/api"
	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/internal/dbtest"
	"github.com/picloud/picloud/internal/metrics"
	"github.com/picloud/picloud/keys"
	"github.com/picloud/picloud/queue"
)

// Database returns a pool on a fresh database with every migration applied.
// The database is a copy of a template migrated once per schema, so it costs
// a CREATE DATABASE rather than a migration run.
func Database(t testing.TB) *pgxpool.Pool {
	t.Helper()
	template, err := migratedTemplate()
	if err != nil {
		t.Fatal(err)
	}
	url := dbtest.CreateDatabase(t, template)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// migratedTemplate is the template of Database, named after the schema's
// content, River's included, so a changed migration or function never
// reuses a stale template.
func migratedTemplate() (dbtest.Option, error) {
	digest, err := queue.SchemaDigest()
	if err != nil {
		return nil, err
	}
	return dbtest.WithTemplate(digest[:16], func(ctx context.Context, url string) error {
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			return err
		}
		defer pool.Close()
		_, err = queue.Migrate(ctx, pool)
		return err
	}), nil
}

// Platform is a running in-process PiCloud.
type Platform struct {
	URL    string
	Pool   *pgxpool.Pool
	Client *queue.Client
	// Catalog holds the functions, their env and schedules.
	Catalog *catalog.Catalog
	// AdminKey is an admin API key, set when Options.Auth is.
	AdminKey string
	// Metrics is the node's registry, served at URL/metrics; set when
	// Options.Metrics is.
	Metrics *metrics.Metrics
}

// Key creates an API key with the scope ("admin" or "invoke").
func (p *Platform) Key(t testing.TB, scope string) string {
	t.Helper()
	key, _, err := p.Client.Keys().Create(context.Background(), "test", keys.Scope(scope))
	if err != nil {
		t.Fatalf("create %s key: %v", scope, err)
	}
	return key
}

// Options tune Start.
type Options struct {
	// Concurrency defaults to 2.
	Concurrency int
	// Processes runs Lua in sandbox processes, as serve does, instead of
	// in the test process; the test binary must call
	// executor.RunSandboxIfChild in TestMain.
	Processes bool
	// Auth makes /v1 require API keys, as serve does; without it every
	// request is let through, as dev's --auth=off does.
	Auth bool
	// Metrics wires a metrics registry as serve does and serves it at
	// /metrics (with Auth, it needs an admin key there, unless
	// MetricsPublic).
	Metrics       bool
	MetricsPublic bool
	// TracerProvider traces the API and the queue, as serve does with an
	// OTLP endpoint configured; nil traces nothing.
	TracerProvider trace.TracerProvider
}

// Start runs the whole platform against a fresh database until the test ends.
func Start(t testing.TB, opts Options) *Platform {
	t.Helper()
	pool := Database(t)
	logger := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	p, stop, err := start(pool, opts, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// Run starts the platform as Start does, for a caller without a testing.TB
// such as a runnable example, and returns it with a function that stops it
// and drops its database. Like Start, it needs dbtest.Main in TestMain.
func Run(opts Options) (p *Platform, stop func(), err error) {
	template, err := migratedTemplate()
	if err != nil {
		return nil, nil, err
	}
	url, drop, err := dbtest.ExampleDatabase(template)
	if err != nil {
		return nil, nil, err
	}
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		drop()
		return nil, nil, fmt.Errorf("open the database: %w", err)
	}
	// An example's output is its stdout; the log goes to stderr, where
	// go test -v shows it.
	logger := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	p, stopPlatform, err := start(pool, opts, logger)
	if err != nil {
		pool.Close()
		drop()
		return nil, nil, err
	}
	return p, func() {
		if err := stopPlatform(); err != nil {
			slog.Warn("platformtest: stop the platform", "error", err)
		}
		pool.Close()
		drop()
	}, nil
}

// start runs the platform on pool until stop is called.
func start(pool *pgxpool.Pool, opts Options, logger *slog.Logger) (p *Platform, stop func() error, err error) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 2
	}
	var sandboxes interface {
		queue.Executor
		Usage() (busy, capacity int)
		Close()
	}
	if opts.Processes {
		s, err := executor.NewSandboxes(executor.SandboxConfig{Processes: opts.Concurrency, Logger: logger})
		if err != nil {
			return nil, nil, fmt.Errorf("sandboxes: %w", err)
		}
		sandboxes = s
	} else {
		sandboxes = executor.NewPool(executor.Config{Size: opts.Concurrency, Logger: logger})
	}
	config := queue.Config{Executor: sandboxes, Concurrency: opts.Concurrency, Logger: logger, TracerProvider: opts.TracerProvider}
	var m *metrics.Metrics
	if opts.Metrics {
		m = metrics.New(logger)
		m.WatchPool(pool)
		config.Observer = m
	}
	client, err := queue.NewClient(pool, config)
	if err != nil {
		sandboxes.Close()
		return nil, nil, fmt.Errorf("queue client: %w", err)
	}
	functions := catalog.New(pool)
	apiConfig := Services(client, functions)
	apiConfig.Logger, apiConfig.DisableAuth, apiConfig.TracerProvider = logger, !opts.Auth, opts.TracerProvider
	if m != nil {
		m.WatchQueue(client)
		m.WatchWorker(client, sandboxes)
		apiConfig.Metrics, apiConfig.MetricsPublic = m.Handler(), opts.MetricsPublic
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.Start(ctx); err != nil {
		sandboxes.Close()
		return nil, nil, fmt.Errorf("start queue client: %w", err)
	}
	srv := httptest.NewServer(api.New(apiConfig))
	stop = func() error {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := client.Stop(ctx)
		sandboxes.Close()
		if err != nil {
			return fmt.Errorf("stop queue client: %w", err)
		}
		return nil
	}
	p = &Platform{URL: srv.URL, Pool: pool, Client: client, Catalog: functions, Metrics: m}
	if opts.Auth {
		key, _, err := client.Keys().Create(ctx, "test", keys.ScopeAdmin)
		if err != nil {
			return nil, nil, errors.Join(fmt.Errorf("create admin key: %w", err), stop())
		}
		p.AdminKey = key
	}
	return p, stop, nil
}

// Services is an API configuration with every service wired as serve
// wires it: the queue client for invocations, events, stats and
// readiness, the catalog for functions, env and schedules, the client's
// key store for keys.
func Services(client *queue.Client, functions *catalog.Catalog) api.Config {
	return api.Config{
		Invocations: client, Events: client, Stats: client, Ready: client,
		Functions: functions, Env: functions, Schedules: functions, Keys: client.Keys(),
	}
}

// Services is the platform's API configuration with its services wired,
// for a second server on the same platform.
func (p *Platform) Services() api.Config { return Services(p.Client, p.Catalog) }

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// Response is what Call read back.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Call sends a request, with body encoded as JSON unless it is nil and
// header as name, value pairs, and reads the whole answer.
func Call(t testing.TB, method, url string, body any, header ...string) Response {
	t.Helper()
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, reader)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", method, url, err)
	}
	return Response{Status: res.StatusCode, Header: res.Header, Body: data}
}
