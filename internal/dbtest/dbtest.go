// Package dbtest gives every test its own fresh PostgreSQL database.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }
//
//	func TestX(t *testing.T) {
//		url := dbtest.CreateDatabase(t, dbtest.WithTemplate("schema_v1", migrate))
//		...
//	}
//
// # Which server
//
// Main picks the server once per test process. If DATABASE_URL is set it is
// used as an admin URL: its server must allow CREATE DATABASE, and test
// databases are created next to the database it names. Otherwise a private
// cluster (internal/pgcluster) in $TMPDIR/picloud-test-pg-<uid> is used,
// shared by all test processes of the user: `go test ./...` runs packages as
// parallel processes, and one cluster start is much cheaper than one per
// package.
//
// # Sharing the private cluster between processes
//
// Two flock(2) files next to the data directory act as a reference count
// that the kernel cleans up even when a process is killed:
//
//   - <dir>.lock, the control lock, is held exclusively while a process
//     starts or stops the cluster, so those decisions never interleave.
//   - <dir>.users is held shared by every process using the cluster, from
//     after Start until m.Run returns.
//
// On entry, under the control lock, a process that can take the users lock
// exclusively is the first user: nobody else is connected, so it also drops
// databases left behind by killed runs, including templates (which may
// have been built by older code). It then holds the users lock shared. On
// exit, under the control lock, a process releases its shared lock and
// tries, without blocking, to take it exclusively; success means it was the
// last user, and it stops the cluster. The data directory is kept, so the
// next run only pays for a server start, not initdb.
//
// A process killed before it stops the cluster leaves it running; the next
// run reuses it and its last process stops it.
//
// # Databases and templates
//
// CreateDatabase creates picloud_test_<random> and drops it in t.Cleanup
// with DROP DATABASE ... WITH (FORCE), so connections a test forgot to
// close do not fail the drop. WithTemplate builds a database once with a
// caller-supplied function (e.g. migrations) and then copies it, which is
// much faster than migrating every test database. Building is guarded by a
// PostgreSQL advisory lock, so concurrent processes build each template once.
package dbtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/picloud/picloud/internal/pgcluster"
)

// server is the PostgreSQL server chosen by Main. It is package state
// because TestMain is the only place that can choose it and tests have no
// other way to receive it; it is written once before m.Run and only read
// afterwards.
var server *target

type target struct {
	admin string                 // URL of a database to run CREATE/DROP DATABASE from
	url   func(db string) string // URL of database db on the same server
}

const (
	testPrefix     = "picloud_test_"
	templatePrefix = "picloud_tmpl_"
	// lockTimeout bounds waiting for another process to start or stop the
	// shared cluster; initdb plus start takes a few seconds.
	lockTimeout = 2 * time.Minute
)

// Main chooses the server, runs the tests and returns the exit code for
// os.Exit. A server that cannot be found or started is reported and fails
// the run instead of skipping tests silently.
func Main(m *testing.M) int {
	log := slog.Default().With(slog.String("component", "dbtest"))
	if dsn := os.Getenv("DATABASE_URL"); dsn != "" {
		t, err := external(dsn)
		if err != nil {
			fmt.Fprintf(os.Stderr, "dbtest: DATABASE_URL: %v\n", err)
			return 1
		}
		server = t
		return m.Run()
	}
	return runWithPrivateCluster(m, log)
}

// AdminURL is the URL CreateDatabase connects to for CREATE DATABASE. Tests
// may use it to inspect the server; they must not drop it. It panics if
// Main has not run.
func AdminURL() string {
	if server == nil {
		panic(errNoMain)
	}
	return server.admin
}

var errNoMain = errors.New("dbtest: no server; call dbtest.Main from TestMain: func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }")

func external(dsn string) (*target, error) {
	if _, err := pgx.ParseConfig(dsn); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Fail once, clearly, rather than in every test.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if err := conn.Close(ctx); err != nil {
		return nil, err
	}
	return &target{
		admin: dsn,
		url:   func(db string) string { return withDatabase(dsn, db) },
	}, nil
}

// withDatabase points a URL or keyword/value connection string at db.
// Database names made here are [a-z0-9_], so they need no quoting.
func withDatabase(dsn, db string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			u.Path, u.RawPath = "/"+db, ""
			// A dbname parameter would override the path.
			if q := u.Query(); q.Has("dbname") {
				q.Del("dbname")
				u.RawQuery = q.Encode()
			}
			return u.String()
		}
		// Multi-host URIs are not valid for net/url; the keyword form
		// below is not valid for them either, so append a dbname parameter,
		// which wins over the path in libpq and pgx.
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + "dbname=" + db
	}
	// Later keywords win in keyword/value strings.
	return dsn + " dbname=" + db
}

func runWithPrivateCluster(m *testing.M, log *slog.Logger) int {
	dataDir := filepath.Join(os.TempDir(), fmt.Sprintf("picloud-test-pg-%d", os.Getuid()))
	control := flock.New(dataDir + ".lock")
	users := flock.New(dataDir + ".users")

	cluster, err := join(control, users, dataDir, log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dbtest: %v\n", err)
		return 1
	}
	server = &target{admin: cluster.URL("postgres"), url: cluster.URL}

	code := m.Run()

	if err := leave(control, users, cluster); err != nil {
		fmt.Fprintf(os.Stderr, "dbtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// join starts or reuses the shared cluster and registers this process as a
// user; see the package documentation for the protocol.
func join(control, users *flock.Flock, dataDir string, log *slog.Logger) (*pgcluster.Cluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	if _, err := control.TryLockContext(ctx, 10*time.Millisecond); err != nil {
		return nil, fmt.Errorf("waiting for control lock %s: %w", control.Path(), err)
	}
	defer control.Unlock()

	first, err := users.TryLock()
	if err != nil {
		return nil, fmt.Errorf("users lock %s: %w", users.Path(), err)
	}
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: dataDir, Ephemeral: true, Logger: log})
	if err != nil {
		users.Unlock()
		return nil, err
	}
	if first {
		if err := dropLeftovers(ctx, cluster.URL("postgres")); err != nil {
			users.Unlock()
			return nil, err
		}
		// Downgrade. Nobody can slip in between: joining needs the control
		// lock, which we hold.
		if err := users.Unlock(); err != nil {
			return nil, fmt.Errorf("users lock: %w", err)
		}
	}
	// Cannot block: an exclusive holder would need the control lock.
	if err := users.RLock(); err != nil {
		return nil, fmt.Errorf("users lock %s: %w", users.Path(), err)
	}
	return cluster, nil
}

// leave unregisters this process and stops the cluster if it was the last
// user. Unlocking and then trying an exclusive lock is equivalent to an
// upgrade here because the control lock keeps new users out; it avoids
// relying on flock's non-atomic lock conversion.
func leave(control, users *flock.Flock, cluster *pgcluster.Cluster) error {
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	if _, err := control.TryLockContext(ctx, 10*time.Millisecond); err != nil {
		users.Unlock()
		return fmt.Errorf("waiting for control lock %s: %w", control.Path(), err)
	}
	defer control.Unlock()
	if err := users.Unlock(); err != nil {
		return fmt.Errorf("users lock: %w", err)
	}
	last, err := users.TryLock()
	if err != nil {
		return fmt.Errorf("users lock: %w", err)
	}
	if !last {
		return nil
	}
	defer users.Unlock()
	return cluster.Stop(ctx)
}

// dropLeftovers removes test databases of killed runs and templates of
// earlier runs: a template built by older migrations under an unchanged key
// would otherwise be reused forever.
func dropLeftovers(ctx context.Context, adminURL string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to private cluster: %w", err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1) OR starts_with(datname, $2)`,
		testPrefix, templatePrefix)
	if err != nil {
		return fmt.Errorf("list leftover databases: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list leftover databases: %w", err)
	}
	for _, name := range names {
		if err := dropDatabase(ctx, conn, name); err != nil {
			return err
		}
	}
	return nil
}

// dropDatabase drops name even if it is a template or has connections.
func dropDatabase(ctx context.Context, conn *pgx.Conn, name string) error {
	id := pgx.Identifier{name}.Sanitize()
	// Templates cannot be dropped; a missing database is fine.
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+id+" IS_TEMPLATE false"); err != nil && !isCode(err, "3D000") {
		return fmt.Errorf("unmark template %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+id+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// Option configures CreateDatabase.
type Option func(*options)

type options struct {
	template *template
}

type template struct {
	name  string
	build func(ctx context.Context, url string) error
}

// WithTemplate makes CreateDatabase copy database picloud_tmpl_<key>,
// which build fills the first time any test process on the server needs it.
// build receives the template's URL and must close its connections before
// returning (leftovers are terminated). key names the template's content:
// callers using different build functions must use different keys, and with
// DATABASE_URL, whose templates survive across runs, the key should change
// whenever build's result does, e.g. by including a hash of the migrations.
func WithTemplate(key string, build func(ctx context.Context, url string) error) Option {
	return func(o *options) {
		o.template = &template{name: templateName(key), build: build}
	}
}

// templateName maps key into a valid, unquoted database name that fits the
// 63-byte limit. A hash of the raw key keeps distinct keys distinct after
// sanitizing.
func templateName(key string) string {
	const maxKey = 40
	var b strings.Builder
	for _, r := range strings.ToLower(key) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	clean := b.String()
	if len(clean) > maxKey {
		clean = clean[:maxKey]
	}
	if clean == key && key != "" {
		return templatePrefix + clean
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return fmt.Sprintf("%s%s_%08x", templatePrefix, clean, h.Sum32())
}

// CreateDatabase creates an empty database (or a copy of a template, see
// WithTemplate), registers its removal with t.Cleanup and returns its URL.
// It fails the test if the database cannot be created.
func CreateDatabase(t testing.TB, opts ...Option) string {
	t.Helper()
	url, drop, err := newDatabase(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Error(err)
		}
	})
	return url
}

// ExampleDatabase creates a database as CreateDatabase does, for a runnable
// example, which has no testing.TB to clean up after it, and returns its URL
// and a function that drops it. Like CreateDatabase it needs Main in
// TestMain.
func ExampleDatabase(opts ...Option) (url string, drop func(), err error) {
	url, dropErr, err := newDatabase(opts...)
	if err != nil {
		return "", nil, err
	}
	return url, func() {
		if err := dropErr(); err != nil {
			slog.Warn("dbtest: drop the example's database", "error", err)
		}
	}, nil
}

// newDatabase creates a database as CreateDatabase describes and returns
// its URL and a function that drops it.
func newDatabase(opts ...Option) (url string, drop func() error, err error) {
	if server == nil {
		return "", nil, errNoMain
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	// Not a test's context: the database must outlive this call, and a
	// template build may run long migrations.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	admin, err := pgx.Connect(ctx, server.admin)
	if err != nil {
		return "", nil, fmt.Errorf("dbtest: connect to admin database: %w", err)
	}
	defer admin.Close(context.Background())

	name := testPrefix + strings.ToLower(rand.Text())
	stmt := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if o.template != nil {
		if err := ensureTemplate(ctx, admin, o.template); err != nil {
			return "", nil, fmt.Errorf("dbtest: template %s: %w", o.template.name, err)
		}
		stmt += " TEMPLATE " + pgx.Identifier{o.template.name}.Sanitize()
	}
	if err := createDatabase(ctx, admin, stmt); err != nil {
		return "", nil, fmt.Errorf("dbtest: %w", err)
	}
	drop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, server.admin)
		if err != nil {
			return fmt.Errorf("dbtest: drop %s: %w", name, err)
		}
		defer conn.Close(context.Background())
		if err := dropDatabase(ctx, conn, name); err != nil {
			return fmt.Errorf("dbtest: %w", err)
		}
		return nil
	}
	return server.url(name), drop, nil
}

// createDatabase retries while the source database has other sessions
// (SQLSTATE 55006). That happens briefly after a template build, while the
// backends we terminated are still exiting, or when someone connects to
// template1.
func createDatabase(ctx context.Context, admin *pgx.Conn, stmt string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := admin.Exec(ctx, stmt)
		if err == nil || !isCode(err, "55006") || time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("%s: %w", stmt, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", stmt, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ensureTemplate builds the template unless a finished one exists. The
// advisory lock lives on the admin database, which all processes share, so
// exactly one of them builds; the others wait and then find it finished.
// IS_TEMPLATE is set last and marks completion: a database with the name but
// without the flag is a build that died midway and is rebuilt.
func ensureTemplate(ctx context.Context, admin *pgx.Conn, tmpl *template) error {
	h := fnv.New32a()
	h.Write([]byte(tmpl.name))
	// The first key is a fixed namespace so we cannot collide with
	// single-bigint advisory locks taken by anything else on this database.
	const lockSpace = 0x7069636c // "picl"
	key := int32(h.Sum32())
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock($1, $2)", lockSpace, key); err != nil {
		return fmt.Errorf("advisory lock: %w", err)
	}
	defer func() {
		// The lock dies with the session anyway; unlocking early only lets
		// another process build sooner.
		_, _ = admin.Exec(context.Background(), "SELECT pg_advisory_unlock($1, $2)", lockSpace, key)
	}()

	var ready bool
	err := admin.QueryRow(ctx, "SELECT datistemplate FROM pg_database WHERE datname = $1", tmpl.name).Scan(&ready)
	switch {
	case err == nil && ready:
		return nil
	case err == nil:
		if err := dropDatabase(ctx, admin, tmpl.name); err != nil {
			return fmt.Errorf("remove unfinished template: %w", err)
		}
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("look up template: %w", err)
	}

	id := pgx.Identifier{tmpl.name}.Sanitize()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+id); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	start := time.Now()
	if err := tmpl.build(ctx, server.url(tmpl.name)); err != nil {
		if derr := dropDatabase(context.Background(), admin, tmpl.name); derr != nil {
			return fmt.Errorf("build: %w (and removing it failed: %w)", err, derr)
		}
		return fmt.Errorf("build: %w", err)
	}
	// Copying requires that nobody is connected to the template, now or
	// later; refusing connections keeps stray clients out for good.
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+id+" ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", tmpl.name); err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+id+" IS_TEMPLATE true"); err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	slog.Default().Debug("dbtest: built template", slog.String("name", tmpl.name), slog.Duration("took", time.Since(start)))
	return nil
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}
