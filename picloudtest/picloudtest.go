package picloudtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	tclog "github.com/testcontainers/testcontainers-go/log"

	"github.com/picloud/picloud/api"
	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/hostapi"
	"github.com/picloud/picloud/keys"
	"github.com/picloud/picloud/queue"
	picloud "github.com/picloud/picloud/sdk/go"
)

// DefaultImage is the PostgreSQL image used when neither WithImage nor
// PICLOUD_TEST_POSTGRES_IMAGE names one.
const DefaultImage = "postgres:16-alpine"

// The environment variables Start reads.
const (
	// EnvImage names the PostgreSQL image to run, e.g. a mirror's copy.
	EnvImage = "PICLOUD_TEST_POSTGRES_IMAGE"
	// EnvDatabaseURL points at an existing server to use instead of a
	// container.
	EnvDatabaseURL = "PICLOUD_TEST_DATABASE_URL"
	// EnvRequire, set to 1, fails tests that would otherwise be skipped
	// for want of Docker.
	EnvRequire = "PICLOUD_TEST_REQUIRE"
)

// Platform is a PiCloud running for one test (Start), or until Close (New).
type Platform struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:41234. A
	// function's HTTP endpoint is URL + "/fn/" + name.
	URL string
	// Client is the generated Go client, sending AdminKey on every request.
	Client *picloud.ClientWithResponses
	// AdminKey is an API key of scope admin; empty with WithoutAuth.
	AdminKey string
	// Pool is connected to the test's database, which holds PiCloud's
	// tables in schema picloud (picloud.kv, picloud.invocations, ...).
	Pool *pgxpool.Pool
	// DatabaseURL is the test's database, for tools that open their own
	// connections.
	DatabaseURL string

	closers   []func() error // what Close undoes, in reverse
	closeOnce sync.Once
	closeErr  error
}

// Option configures Start, or every Start of a package when given to Main.
type Option func(*config)

type config struct {
	image       string
	databaseURL string
	noAuth      bool
	concurrency int
	processes   bool
	privateHTTP bool
	logger      *slog.Logger
	mainActive  bool // Main is running the package's tests
}

// WithImage runs this PostgreSQL image instead of PICLOUD_TEST_POSTGRES_IMAGE
// or DefaultImage. It must behave as the official postgres image does
// (POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB; "database system is
// ready to accept connections" logged twice).
func WithImage(image string) Option { return func(c *config) { c.image = image } }

// WithDatabaseURL uses an existing PostgreSQL server instead of a container,
// overriding PICLOUD_TEST_DATABASE_URL. Its user must be allowed to CREATE
// DATABASE; the database the URL names is only used to create and drop the
// tests' databases.
func WithDatabaseURL(url string) Option { return func(c *config) { c.databaseURL = url } }

// WithoutAuth serves every request without an API key, as picloud dev does
// by default. Platform.AdminKey is then empty.
func WithoutAuth() Option { return func(c *config) { c.noAuth = true } }

// WithConcurrency sets how many invocations run at once (default 2).
func WithConcurrency(n int) Option { return func(c *config) { c.concurrency = n } }

// WithProcessSandboxes runs each invocation's Lua in a sandbox process, as
// picloud serve does, instead of in the test process. The sandboxes are the
// test binary started again, so the package must use Main in TestMain.
func WithProcessSandboxes() Option { return func(c *config) { c.processes = true } }

// WithPrivateHTTP lets functions reach loopback and private addresses with
// http.request, such as an httptest.Server standing in for an upstream API.
// The function must still list the host in its http_allow (AllowHTTP).
func WithPrivateHTTP() Option { return func(c *config) { c.privateHTTP = true } }

// WithLogger receives the platform's own log. By default warnings and
// errors go to t.Log, which shows them for failed tests and with -v.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// Start runs PiCloud on a fresh database until t ends. It skips t when no
// Docker engine is reachable and no database URL is set, or fails it when
// PICLOUD_TEST_REQUIRE=1; any other problem fails t.
func Start(t testing.TB, opts ...Option) *Platform {
	t.Helper()
	cfg := newConfig(opts)
	if cfg.logger == nil {
		w := &testWriter{t: t}
		// Cleanups run in reverse order, so this one runs after the
		// platform has stopped; a late line from a goroutine still
		// winding down must not reach a finished test.
		t.Cleanup(w.close)
		cfg.logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	p, err := start(t.Context(), cfg, tclog.TestLogger(t))
	if errors.Is(err, errNoDocker) {
		unavailable(t, cfg.image, err)
	}
	if err != nil {
		t.Fatalf("picloudtest: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("picloudtest: %v", err)
		}
	})
	return p
}

// New runs PiCloud on a fresh database until Close, for code that has no
// test to tie it to: TestMain, a runnable example, a program. ctx bounds
// the start. It finds PostgreSQL as Start does; where there is none, the
// error says how to provide it (a runnable example cannot skip: see Main).
// By default the platform's warnings and errors go to standard error.
func New(ctx context.Context, opts ...Option) (*Platform, error) {
	cfg := newConfig(opts)
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	p, err := start(ctx, cfg, tclog.NewNoopLogger())
	if errors.Is(err, errNoDocker) {
		return nil, fmt.Errorf("picloudtest: %w; %s", err, howToProvide(cfg.image))
	}
	if err != nil {
		return nil, fmt.Errorf("picloudtest: %w", err)
	}
	return p, nil
}

// Close stops the platform, drops its database and stops the container
// started for it alone. It is for platforms made with New: Start's close
// when their test ends. Calling it again returns the first call's result.
func (p *Platform) Close() error {
	p.closeOnce.Do(func() {
		var errs []error
		for i := len(p.closers) - 1; i >= 0; i-- {
			errs = append(errs, p.closers[i]())
		}
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}

// newConfig applies the environment, then Main's options, then opts.
func newConfig(opts []Option) config {
	cfg := config{
		image:       os.Getenv(EnvImage),
		databaseURL: os.Getenv(EnvDatabaseURL),
		concurrency: 2,
	}
	if cfg.image == "" {
		cfg.image = DefaultImage
	}
	shared.mu.Lock()
	cfg.mainActive = shared.active
	defaults := shared.options
	shared.mu.Unlock()
	for _, opt := range append(defaults[:len(defaults):len(defaults)], opts...) {
		opt(&cfg)
	}
	return cfg
}

// start finds a server, creates the platform's database on it and runs the
// platform. On error, it undoes what it did.
func start(ctx context.Context, cfg config, containerLog tclog.Logger) (*Platform, error) {
	if cfg.processes && !cfg.mainActive {
		return nil, errors.New("WithProcessSandboxes needs picloudtest.Main in TestMain: func TestMain(m *testing.M) { os.Exit(picloudtest.Main(m)) }")
	}
	var closers []func() error
	onClose := func(f func() error) { closers = append(closers, f) }
	p, err := func() (*Platform, error) {
		srv, err := acquireServer(ctx, &cfg, containerLog, onClose)
		if err != nil {
			return nil, err
		}
		dbURL, err := srv.createDatabase(ctx, onClose)
		if err != nil {
			return nil, err
		}
		return run(ctx, cfg, dbURL, onClose)
	}()
	if err != nil {
		undo := &Platform{closers: closers}
		if cerr := undo.Close(); cerr != nil {
			return nil, fmt.Errorf("%w (and undoing the start: %w)", err, cerr)
		}
		return nil, err
	}
	p.closers = closers
	return p, nil
}

// unavailable skips t, or fails it under PICLOUD_TEST_REQUIRE=1, saying how
// to make the test run.
func unavailable(t testing.TB, image string, err error) {
	t.Helper()
	msg := fmt.Sprintf("picloudtest: %v.\nTo run this test, %s", err, howToProvide(image))
	if os.Getenv(EnvRequire) == "1" {
		t.Fatal(msg + "\n" + EnvRequire + "=1 is set, so this is a failure rather than a skip.")
	}
	t.Skip(msg + "\nSet " + EnvRequire + "=1 to fail instead of skipping.")
}

// howToProvide says how to give picloudtest a PostgreSQL.
func howToProvide(image string) string {
	return fmt.Sprintf("either start Docker (testcontainers finds it through DOCKER_HOST or /var/run/docker.sock) "+
		"so that it can run image %s (%s names another), "+
		"or set %s to an existing PostgreSQL whose user may CREATE DATABASE, e.g. %s=postgres://postgres@localhost:5432/postgres.",
		image, EnvImage, EnvDatabaseURL, EnvDatabaseURL)
}

// run starts the executor, the queue and the HTTP API on dbURL, and hands
// onClose what stops them.
func run(ctx context.Context, cfg config, dbURL string, onClose func(func() error)) (*Platform, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("open test database: %w", err)
	}
	onClose(func() error { pool.Close(); return nil })

	logger := cfg.logger

	var exec interface {
		queue.Executor
		Close()
	}
	if cfg.processes {
		s, err := executor.NewSandboxes(executor.SandboxConfig{Processes: cfg.concurrency, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("sandboxes: %w", err)
		}
		exec = s
	} else {
		exec = executor.NewPool(executor.Config{Size: cfg.concurrency, Logger: logger})
	}
	client, err := queue.NewClient(pool, queue.Config{
		Executor:    exec,
		Concurrency: cfg.concurrency,
		Logger:      logger,
		HTTP:        hostapi.HTTPConfig{AllowPrivate: cfg.privateHTTP},
	})
	if err != nil {
		exec.Close()
		return nil, fmt.Errorf("queue client: %w", err)
	}
	if err := client.Start(ctx); err != nil {
		exec.Close()
		return nil, fmt.Errorf("start queue client: %w", err)
	}
	functions := catalog.New(pool)
	httpSrv := httptest.NewServer(api.New(api.Config{
		Invocations: client, Events: client, Stats: client, Ready: client,
		Functions: functions, Env: functions, Schedules: functions, Keys: client.Keys(),
		Logger: logger, DisableAuth: cfg.noAuth,
	}))
	onClose(func() error {
		httpSrv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := client.Stop(ctx)
		exec.Close()
		if err != nil {
			return fmt.Errorf("stop queue client: %w", err)
		}
		return nil
	})

	p := &Platform{URL: httpSrv.URL, Pool: pool, DatabaseURL: dbURL}
	if !cfg.noAuth {
		key, _, err := client.Keys().Create(ctx, "picloudtest admin", keys.ScopeAdmin)
		if err != nil {
			return nil, fmt.Errorf("create admin key: %w", err)
		}
		p.AdminKey = key
	}
	p.Client, err = picloud.NewClientWithResponses(p.URL, picloud.WithAPIKey(p.AdminKey))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return p, nil
}

// testWriter sends the platform's log lines to t.Log until close.
type testWriter struct {
	t      testing.TB
	mu     sync.Mutex
	closed bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(string(b))
	}
	return len(b), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}
