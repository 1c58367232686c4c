package picloudtest

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/testcontainers/testcontainers-go/modules/postgres"

	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/queue"
)

const (
	databasePrefix = "picloudtest_"
	templatePrefix = "picloudtest_tpl_"
	// containerTimeout bounds starting a container: creating it, initdb,
	// and the restart the readiness check waits for.
	containerTimeout = 3 * time.Minute
)

// shared is the state Main keeps for the package's tests. It is package
// state because TestMain and the tests have no other way to hand things to
// each other: Main sets active before m.Run, Start reads it and, on the
// first call for an image, starts that image's container and records it
// here, and Main terminates the recorded containers after m.Run returns.
// So a shared container lives from the first Start that needs it until
// the package's last test has finished. Without Main, active stays false
// and every Start owns its container.
var shared struct {
	mu      sync.Mutex
	active  bool
	options []Option // Main's, applied before each Start's own
	servers map[string]*sharedServer
}

type sharedServer struct {
	once sync.Once
	srv  *server
	err  error
}

// Main runs the package's tests with one PostgreSQL container shared by all
// of them (each test still gets a database of its own), and returns the
// exit code for os.Exit:
//
//	func TestMain(m *testing.M) { os.Exit(picloudtest.Main(m)) }
//
// opts are the defaults for every Start in the package; Start's own options
// come after them. The container starts with the first test that needs
// one, so a run of tests that skip, or that use PICLOUD_TEST_DATABASE_URL,
// starts none. Main also serves the sandbox processes of
// WithProcessSandboxes, which are this test binary started again.
//
// Where Start would skip for want of PostgreSQL, Main leaves the package's
// runnable examples out of the run (with -test.skip) and says so: an
// example has no t to skip, and the New it calls would fail it.
// PICLOUD_TEST_REQUIRE=1 keeps them in, to fail.
func Main(m *testing.M, opts ...Option) int {
	executor.RunSandboxIfChild()
	shared.mu.Lock()
	shared.active = true
	shared.servers = make(map[string]*sharedServer)
	shared.options = opts
	shared.mu.Unlock()
	skipExamplesWithoutServer()

	code := m.Run()

	shared.mu.Lock()
	servers := shared.servers
	shared.active, shared.servers, shared.options = false, nil, nil
	shared.mu.Unlock()
	for image, s := range servers {
		if s.srv == nil || s.srv.terminate == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := s.srv.terminate(ctx)
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "picloudtest: stop %s container: %v\n", image, err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// skipExamplesWithoutServer adds the examples to -test.skip when there is
// neither a database URL nor a Docker engine, unless PICLOUD_TEST_REQUIRE=1.
func skipExamplesWithoutServer() {
	cfg := newConfig(nil)
	if cfg.databaseURL != "" || os.Getenv(EnvRequire) == "1" {
		return
	}
	err := dockerCheck(tclog.NewNoopLogger())
	if err == nil {
		return
	}
	// m.Run would parse them anyway; a TestMain may have already.
	if !flag.Parsed() {
		flag.Parse()
	}
	skip := flag.Lookup("test.skip")
	if skip == nil {
		return // not a test binary
	}
	// A top-level alternative: each of the user's own keeps its meaning,
	// subtest levels included.
	pattern := "^Example"
	if s := skip.Value.String(); s != "" {
		pattern = s + "|" + pattern
	}
	_ = skip.Value.Set(pattern) // a string flag takes any value
	fmt.Fprintf(os.Stderr, "picloudtest: skipping the examples: %v: %v.\nTo run them, %s\nSet %s=1 to fail instead of skipping.\n",
		errNoDocker, err, howToProvide(cfg.image), EnvRequire)
}

// server is a PostgreSQL server on which tests create their databases.
type server struct {
	admin string // URL of a database to run CREATE and DROP DATABASE from
	// terminate stops the container; nil for a server we did not start.
	terminate func(ctx context.Context) error

	tmplOnce sync.Once
	tmplErr  error
}

// errNoDocker marks a server that could not be had because no Docker engine
// answers: the one case that skips rather than fails.
var errNoDocker = errors.New("no Docker engine")

// acquireServer finds the server for a platform: the configured URL, the
// package's shared container, or a container of the platform's own, whose
// termination it hands to onClose.
func acquireServer(ctx context.Context, cfg *config, containerLog tclog.Logger, onClose func(func() error)) (*server, error) {
	if cfg.databaseURL != "" {
		if _, err := pgx.ParseConfig(cfg.databaseURL); err != nil {
			return nil, fmt.Errorf("database URL: %w", err)
		}
		return &server{admin: cfg.databaseURL}, nil
	}
	shared.mu.Lock()
	if !shared.active {
		shared.mu.Unlock()
		srv, err := startContainer(ctx, cfg.image, containerLog)
		if srv != nil {
			onClose(func() error {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := srv.terminate(ctx); err != nil {
					return fmt.Errorf("stop container: %w", err)
				}
				return nil
			})
		}
		return srv, err
	}
	s := shared.servers[cfg.image]
	if s == nil {
		s = &sharedServer{}
		shared.servers[cfg.image] = s
	}
	shared.mu.Unlock()
	s.once.Do(func() {
		// The container outlives the platform that starts it, so its log
		// must not go to that test, nor its start be cut short by that
		// platform's context.
		logger := tclog.NewNoopLogger()
		if testing.Verbose() {
			logger = tclog.Default()
		}
		s.srv, s.err = startContainer(context.WithoutCancel(ctx), cfg.image, logger)
	})
	return s.srv, s.err
}

// startContainer runs image with testcontainers' postgres module. On error
// the returned server, when not nil, still has a container to terminate.
func startContainer(ctx context.Context, image string, logger tclog.Logger) (srv *server, err error) {
	if err := dockerCheck(logger); err != nil {
		return nil, fmt.Errorf("%w: %w", errNoDocker, err)
	}
	ctx, cancel := context.WithTimeout(ctx, containerTimeout)
	defer cancel()
	ctr, err := postgres.Run(ctx, image,
		testcontainers.WithLogger(logger),
		// The official image initialises, restarts and only then listens
		// on all addresses: hence two "ready" lines.
		postgres.BasicWaitStrategies(),
		// Each running platform holds a pool, River's listener and its
		// migrations' connection; parallel tests on one shared server add up.
		testcontainers.WithCmdArgs("-c", "max_connections=300"),
	)
	if ctr != nil {
		srv = &server{terminate: func(ctx context.Context) error {
			return ctr.Terminate(ctx)
		}}
	}
	if err != nil {
		return srv, fmt.Errorf("start %s: %w", image, err)
	}
	srv.admin, err = ctr.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		return srv, fmt.Errorf("connection string of %s: %w", image, err)
	}
	return srv, nil
}

// dockerCheck is dockerHealth, in a variable so that the package's tests
// can simulate a machine without Docker.
var dockerCheck = dockerHealth

// dockerHealth reports whether a Docker engine answers, the way
// testcontainers' own SkipIfProviderIsNotHealthy decides, recovered panics
// included, but as an error so that Start chooses between skip and fail.
func dockerHealth(logger tclog.Logger) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("docker provider panicked: %v", r)
		}
	}()
	provider, err := testcontainers.ProviderDefault.GetProvider(testcontainers.WithLogger(logger))
	if err != nil {
		return err
	}
	// The client is closed either way; a failed close changes nothing.
	defer func() { _ = provider.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return provider.Health(ctx)
}

// createDatabase creates a fresh migrated database, hands onClose what
// drops it, and returns its URL.
func (s *server) createDatabase(ctx context.Context, onClose func(func() error)) (string, error) {
	// Not cancelled with ctx: the template this may build serves later
	// platforms too, and must not be cut short with this one.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		return "", fmt.Errorf("connect to the server: %w", err)
	}
	defer admin.Close(context.Background())

	tmpl, err := templateName()
	if err != nil {
		return "", err
	}
	s.tmplOnce.Do(func() { s.tmplErr = s.ensureTemplate(ctx, admin, tmpl) })
	if s.tmplErr != nil {
		return "", fmt.Errorf("template %s: %w", tmpl, s.tmplErr)
	}

	name := databasePrefix + strings.ToLower(rand.Text())
	if err := createFromTemplate(ctx, admin, name, tmpl); err != nil {
		return "", err
	}
	onClose(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, s.admin)
		if err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		defer conn.Close(context.Background())
		// FORCE: a connection the test left open must not keep the
		// database alive.
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	})
	return withDatabase(s.admin, name), nil
}

// createFromTemplate retries while the template has other sessions
// (SQLSTATE 55006): for a moment after a build, the backends it used are
// still exiting.
func createFromTemplate(ctx context.Context, admin *pgx.Conn, name, tmpl string) error {
	stmt := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize() + " TEMPLATE " + pgx.Identifier{tmpl}.Sanitize()
	for {
		_, err := admin.Exec(ctx, stmt)
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" {
			if err != nil {
				return fmt.Errorf("create database %s: %w", name, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("create database %s: %w", name, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ensureTemplate builds the template unless a finished one exists. Test
// binaries of several packages may share a server (go test ./... with
// PICLOUD_TEST_DATABASE_URL), so an advisory lock makes one of them build
// while the others wait; IS_TEMPLATE, set last, marks a finished build, and
// a database with the name but without it is a build that died midway.
func (s *server) ensureTemplate(ctx context.Context, admin *pgx.Conn, name string) error {
	h := fnv.New32a()
	h.Write([]byte(name))
	const lockSpace = 0x70637474 // "pctt": keeps clear of one-key advisory locks
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock($1, $2)", lockSpace, int32(h.Sum32())); err != nil {
		return fmt.Errorf("advisory lock: %w", err)
	}
	defer func() {
		// The lock also dies with the connection; unlocking now lets a
		// waiting process go on sooner.
		_, _ = admin.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, $2)", lockSpace, int32(h.Sum32()))
	}()

	id := pgx.Identifier{name}.Sanitize()
	var ready bool
	err := admin.QueryRow(ctx, "SELECT datistemplate FROM pg_database WHERE datname = $1", name).Scan(&ready)
	switch {
	case err == nil && ready:
		return nil
	case err == nil:
		if _, err := admin.Exec(ctx, "DROP DATABASE "+id+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop unfinished template: %w", err)
		}
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("look up template: %w", err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+id); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if err := migrate(ctx, withDatabase(s.admin, name)); err != nil {
		if _, derr := admin.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+id+" WITH (FORCE)"); derr != nil {
			return fmt.Errorf("migrate: %w (and dropping it: %w)", err, derr)
		}
		return fmt.Errorf("migrate: %w", err)
	}
	// A copy needs a template nobody is connected to, now or later.
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+id+" ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name); err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+id+" IS_TEMPLATE true"); err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	return nil
}

func migrate(ctx context.Context, dbURL string) error {
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	_, err = queue.Migrate(ctx, pool)
	return err
}

// templateName names the template after the migrations it holds, River's
// included, so that a server kept between runs never serves a copy of an
// older schema.
var templateName = sync.OnceValues(func() (string, error) {
	digest, err := queue.SchemaDigest()
	if err != nil {
		return "", fmt.Errorf("schema digest: %w", err)
	}
	return templatePrefix + digest[:16], nil
})

// withDatabase points a URL, or a keyword/value connection string, at
// database db. Names made here are [a-z0-9_], so they need no quoting.
func withDatabase(dsn, db string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			u.Path, u.RawPath = "/"+db, ""
			q := u.Query()
			if q.Has("dbname") {
				q.Del("dbname")
				u.RawQuery = q.Encode()
			}
			return u.String()
		}
		// net/url refuses multi-host URLs; a dbname parameter wins over
		// the path in pgx and libpq.
		if strings.Contains(dsn, "?") {
			return dsn + "&dbname=" + db
		}
		return dsn + "?dbname=" + db
	}
	// In keyword/value strings the last occurrence of a keyword wins.
	return dsn + " dbname=" + db
}
