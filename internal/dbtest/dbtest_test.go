package dbtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func userTables(t testing.TB, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func databaseExists(t testing.TB, name string) bool {
	t.Helper()
	conn := connect(t, AdminURL())
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func currentDatabase(t testing.TB, conn *pgx.Conn) string {
	t.Helper()
	var name string
	if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestCreateDatabaseGivesDistinctEmptyDatabases(t *testing.T) {
	t.Parallel()
	a, b := connect(t, CreateDatabase(t)), connect(t, CreateDatabase(t))
	if da, db := currentDatabase(t, a), currentDatabase(t, b); da == db || !strings.HasPrefix(da, testPrefix) {
		t.Fatalf("databases %q and %q", da, db)
	}
	if got := userTables(t, a); len(got) != 0 {
		t.Fatalf("fresh database has tables %v", got)
	}
	if _, err := a.Exec(t.Context(), "CREATE TABLE only_in_a (id int)"); err != nil {
		t.Fatal(err)
	}
	if got := userTables(t, b); len(got) != 0 {
		t.Fatalf("second database sees tables %v", got)
	}
}

func TestCleanupDropsDatabase(t *testing.T) {
	t.Parallel()
	var (
		name   string
		leaked *pgx.Conn
	)
	t.Run("user", func(t *testing.T) {
		url := CreateDatabase(t)
		var err error
		// Deliberately still open when the cleanup drops the database.
		leaked, err = pgx.Connect(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		name = currentDatabase(t, leaked)
	})
	if leaked != nil {
		defer leaked.Close(context.Background())
	}
	if name == "" || databaseExists(t, name) {
		t.Fatalf("database %q still exists after its test finished", name)
	}
}

// uniqueKey keeps this process's templates apart from those of concurrent
// runs against the same server, so build counts are exact.
func uniqueKey(t *testing.T, base string) string {
	key := fmt.Sprintf("%s_%d_%d", base, os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() { dropTemplate(t, key) })
	return key
}

// dropTemplate runs from cleanups, where t.Context is already canceled.
func dropTemplate(t testing.TB, key string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Error(err)
		return
	}
	defer conn.Close(ctx)
	if err := dropDatabase(ctx, conn, templateName(key)); err != nil {
		t.Error(err)
	}
}

func TestTemplateBuiltOnceAndCopied(t *testing.T) {
	t.Parallel()
	key := uniqueKey(t, "selftest")
	var builds atomic.Int32
	build := func(ctx context.Context, url string) error {
		builds.Add(1)
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "CREATE TABLE migrated (v text); INSERT INTO migrated VALUES ('from template')")
		return err
	}

	// The group returns only when its parallel subtests are done.
	t.Run("group", func(t *testing.T) {
		for range 4 {
			t.Run("copy", func(t *testing.T) {
				t.Parallel()
				conn := connect(t, CreateDatabase(t, WithTemplate(key, build)))
				var v string
				if err := conn.QueryRow(t.Context(), "SELECT v FROM migrated").Scan(&v); err != nil || v != "from template" {
					t.Fatalf("copy has v=%q, err=%v", v, err)
				}
				// Copies are independent of each other.
				if _, err := conn.Exec(t.Context(), "DROP TABLE migrated"); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
	t.Run("sequential", func(t *testing.T) {
		conn := connect(t, CreateDatabase(t, WithTemplate(key, build)))
		if got := userTables(t, conn); len(got) != 1 || got[0] != "migrated" {
			t.Fatalf("copy has tables %v", got)
		}
	})
	if n := builds.Load(); n != 1 {
		t.Fatalf("build ran %d times, want 1", n)
	}
}

// fatalRecorder turns Fatal into a recorded message so a test can check
// that CreateDatabase fails its caller.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Fatal(args ...any) { f.msg = fmt.Sprint(args...); runtime.Goexit() }
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestTemplateBuildFailure(t *testing.T) {
	t.Parallel()
	key := uniqueKey(t, "broken")
	boom := errors.New("migration 7 failed")
	build := func(ctx context.Context, url string) error {
		// Leave a connection open, as a failing migration might.
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return boom
	}
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		CreateDatabase(rec, WithTemplate(key, build))
		t.Error("CreateDatabase returned despite a failing build")
	}()
	<-done
	if !strings.Contains(rec.msg, boom.Error()) {
		t.Fatalf("failure message %q does not contain the build error", rec.msg)
	}
	if databaseExists(t, templateName(key)) {
		t.Fatal("half-built template was not dropped")
	}
}

func TestTemplateName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ key, want string }{
		{"schema_v1", "picloud_tmpl_schema_v1"},
		{"Schema-V1", "picloud_tmpl_schema_v1_"},
		{strings.Repeat("a", 60), "picloud_tmpl_" + strings.Repeat("a", 40) + "_"},
		{"", "picloud_tmpl__"},
	} {
		got := templateName(tc.key)
		if !strings.HasPrefix(got, tc.want) || len(got) > 63 {
			t.Errorf("templateName(%q) = %q, want prefix %q and at most 63 bytes", tc.key, got, tc.want)
		}
	}
	if templateName("a-b") == templateName("a_b") {
		t.Error("distinct keys collide after sanitizing")
	}
}

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:p@h:5432/postgres?sslmode=disable", "postgres://u:p@h:5432/x?sslmode=disable"},
		{"postgresql://h/postgres?dbname=other", "postgresql://h/x"},
		{"host=h user=u dbname=postgres", "host=h user=u dbname=postgres dbname=x"},
	} {
		got := withDatabase(tc.in, "x")
		if got != tc.want {
			t.Errorf("withDatabase(%q) = %q, want %q", tc.in, got, tc.want)
		}
		cfg, err := pgx.ParseConfig(got)
		if err != nil || cfg.Database != "x" {
			t.Errorf("%q parses to database %v (err %v)", got, cfg.Database, err)
		}
	}
}

func BenchmarkCreateDatabaseFromTemplate(b *testing.B) {
	key := fmt.Sprintf("bench_%d", os.Getpid())
	build := func(ctx context.Context, url string) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		for i := range 20 {
			if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE t%d (id bigserial PRIMARY KEY, body jsonb, created timestamptz DEFAULT now())", i)); err != nil {
				return err
			}
		}
		return nil
	}
	CreateDatabase(b, WithTemplate(key, build)) // build outside the timing
	b.ResetTimer()
	for b.Loop() {
		CreateDatabase(b, WithTemplate(key, build))
	}
	b.StopTimer()
	b.Cleanup(func() { dropTemplate(b, key) })
}
