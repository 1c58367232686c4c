package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/picloud/picloud/api"
	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/internal/dbtest"
	"github.com/picloud/picloud/queue"
)

func TestMain(m *testing.M) {
	executor.RunSandboxIfChild() // serve and dev start this binary as their sandboxes
	if os.Getenv(testNodeEnv) != "" {
		runTestNode() // a worker process started by a scale-out test
	}
	os.Exit(dbtest.Main(m))
}

func getOK(url string) bool {
	res, err := http.Get(url)
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// runCLI runs picloud with args in-process until ctx ends.
func runCLI(ctx context.Context, t *testing.T, args ...string) error {
	t.Helper()
	var c cli
	parser, err := kong.New(&c, append(kongOptions(), kong.Exit(func(int) { t.Fatalf("picloud %v exited", args) }))...)
	if err != nil {
		t.Fatal(err)
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		return err
	}
	return run(ctx, kctx, slog.New(slog.DiscardHandler))
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// servedURL is a slog handler that hands on the URL a node logs when it
// serves HTTP.
type servedURL struct{ urls chan string }

func (h servedURL) Enabled(context.Context, slog.Level) bool { return true }
func (h servedURL) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h servedURL) WithGroup(string) slog.Handler            { return h }
func (h servedURL) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "serving" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "url" {
			select {
			case h.urls <- a.Value.String():
			default:
			}
			return false
		}
		return true
	})
	return nil
}

// syncBuffer is a bytes.Buffer written by the command's goroutine and read
// by the test's.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startNode starts a serving command (dev, serve, api) on a port of its
// own and returns its base URL, what it writes to stderr, and a function
// that stops it the way a signal does and returns its error.
//
// The command listens on port 0 and the test learns the address from its
// log. Polling an address picked beforehand (listen on :0, close, pass it
// on) raced: while dev ran initdb and started PostgreSQL, a server of
// another test process could take the released port and answer /readyz,
// and the test then cancelled dev in the middle of pg_ctl start.
func startNode(t *testing.T, args ...string) (base string, stderr *syncBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	urls := make(chan string, 1)
	stderr = &syncBuffer{}
	go func() {
		var c cli
		parser, err := kong.New(&c, append(kongOptions(), kong.Writers(io.Discard, stderr),
			kong.Exit(func(int) { panic("picloud exited") }))...)
		if err == nil {
			var kctx *kong.Context
			if kctx, err = parser.Parse(append(args, "--addr", "127.0.0.1:0")); err == nil {
				err = run(ctx, kctx, slog.New(servedURL{urls}))
			}
		}
		done <- err
	}()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(time.Minute):
			return errors.New("no shutdown within a minute")
		}
	}
	t.Cleanup(func() { _ = stop() })

	select {
	case base = <-urls:
	case err := <-done:
		stopped = true
		t.Fatalf("picloud %v ended before it served: %v\nstderr: %s", args, err, stderr.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("picloud %v not serving after two minutes", args)
	}
	if !getOK(base + "/readyz") {
		t.Fatalf("picloud %v serves at %s but is not ready", args, base)
	}
	return base, stderr, stop
}

// serveAndCall starts a serving command, deploys hello with key (none when
// empty), calls it, runs check (if not nil) with the base URL and what the
// command wrote to stderr so far, and stops the command the way a signal
// does.
func serveAndCall(t *testing.T, key string, check func(base, stderr string), args ...string) {
	t.Helper()
	base, stderr, stop := startNode(t, args...)

	source, err := os.ReadFile("../../testdata/functions/hello.lua")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := jsonString(string(source))
	req, _ := http.NewRequest(http.MethodPut, base+"/v1/functions/hello", strings.NewReader(`{"source":`+body+`}`))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		unauthenticated, err := http.DefaultClient.Do(req.Clone(context.Background()))
		if err != nil || unauthenticated.StatusCode != http.StatusUnauthorized {
			t.Fatalf("deploy without a key: %v %v, want 401", unauthenticated, err)
		}
		unauthenticated.Body.Close()
		req, _ = http.NewRequest(http.MethodPut, base+"/v1/functions/hello", strings.NewReader(`{"source":`+body+`}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode >= 300 {
		t.Fatalf("deploy: %v %v", res, err)
	}
	res, err := http.Get(base + "/fn/hello?name=Ada")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(got) != "Hello, Ada!" || res.Header.Get("X-Invocation-Id") == "" {
		t.Errorf("/fn/hello = %d %q", res.StatusCode, got)
	}
	if check != nil {
		check(base, stderr.String())
	}

	if err := stop(); err != nil {
		t.Errorf("picloud %v stopped with %v, want a clean shutdown", args, err)
	}
}

// TestServe: serve requires API keys; the operator's first one comes from
// picloud keys create against the database.
func TestServe(t *testing.T) {
	t.Parallel()
	url := dbtest.CreateDatabase(t)
	if err := runCLI(context.Background(), t, "migrate", "--database-url", url); err != nil {
		t.Fatal(err)
	}
	key, err := runKeys(t, "keys", "--database-url", url, "create", "--scope", "admin")
	if err != nil {
		t.Fatal(err)
	}
	serveAndCall(t, strings.TrimSpace(key), nil, "serve", "--database-url", url)
}

// TestDevOnDatabaseURL: dev runs with authentication off by default.
func TestDevOnDatabaseURL(t *testing.T) {
	t.Parallel()
	serveAndCall(t, "", func(base, stderr string) {
		// The user's URL may hold a password: not repeated.
		if !strings.Contains(stderr, "PiCloud is running at "+base+"\n") || strings.Contains(stderr, "export DATABASE_URL") {
			t.Errorf("banner:\n%s", stderr)
		}
	}, "dev", "--database-url", dbtest.CreateDatabase(t))
}

// TestDevPrivateCluster is the README's first command on a machine with
// PostgreSQL installed and no DATABASE_URL: dev starts its own cluster in
// --data-dir, keeps the data, and stops it on exit.
func TestDevPrivateCluster(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	serveAndCall(t, "", func(base, stderr string) {
		// The banner gives the private database's URL, ready to export,
		// and it reaches the database dev uses.
		m := regexp.MustCompile(`(?m)^  Database:   export DATABASE_URL='([^']+)'$`).FindStringSubmatch(stderr)
		if m == nil {
			t.Fatalf("the banner has no DATABASE_URL:\n%s", stderr)
		}
		conn, err := pgx.Connect(context.Background(), m[1])
		if err != nil {
			t.Fatalf("connect to the printed DATABASE_URL %s: %v", m[1], err)
		}
		defer conn.Close(context.Background())
		var name string
		if err := conn.QueryRow(context.Background(), "SELECT name FROM picloud.functions").Scan(&name); err != nil || name != "hello" {
			t.Errorf("functions in the printed database: %q, %v", name, err)
		}
		if !strings.Contains(stderr, "export PICLOUD_URL="+base+"\n") {
			t.Errorf("the banner does not give PICLOUD_URL:\n%s", stderr)
		}
	}, "dev", "--database-url=", "--data-dir", dataDir)
	if _, err := os.Stat(filepath.Join(dataDir, "pg", "PG_VERSION")); err != nil {
		t.Errorf("no cluster in the data directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "pg", "postmaster.pid")); !os.IsNotExist(err) {
		t.Errorf("PostgreSQL still running after dev exited (postmaster.pid: %v)", err)
	}
	// A second start finds the function deployed by the first.
	serveAndCall(t, "", nil, "dev", "--database-url=", "--data-dir", dataDir)
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	url := dbtest.CreateDatabase(t)
	for range 2 {
		if err := runCLI(context.Background(), t, "migrate", "--database-url", url); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if pending, err := queue.Pending(context.Background(), pool); err != nil || len(pending) > 0 {
		t.Errorf("after migrate: pending %v, %v", pending, err)
	}
}

func TestOpenAPICommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := runCLI(context.Background(), t, "openapi", "--dir", dir); err != nil {
		t.Fatal(err)
	}
	v31, v30, err := api.OpenAPIDocuments()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{"openapi.yaml": v31, "openapi-3.0.yaml": v30} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %v, or content differs from api.OpenAPIDocuments", name, err)
		}
	}
}

func TestMissingDatabaseURL(t *testing.T) {
	for _, set := range []bool{false, true} {
		t.Setenv("DATABASE_URL", "")
		if !set {
			os.Unsetenv("DATABASE_URL") // t.Setenv restores it afterwards
		}
		for _, cmd := range []string{"serve", "migrate"} {
			err := runCLI(context.Background(), t, cmd)
			if err == nil || !strings.Contains(err.Error(), "database-url") {
				t.Errorf("%s with DATABASE_URL set=%v but empty: %v, want an error naming --database-url", cmd, set, err)
			}
		}
	}
}

func jsonString(s string) (string, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(s)
	return strings.TrimSpace(b.String()), err
}
