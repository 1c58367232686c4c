package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
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

// serveAndCall starts a serving command, deploys hello with key (none when
// empty), calls it, and stops the command the way a signal does.
func serveAndCall(t *testing.T, key string, args ...string) {
	t.Helper()
	addr := freeAddr(t)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runCLI(ctx, t, append(args, "--addr", addr)...) }()

	base := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("picloud %v ended before it was ready: %v", args, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("picloud %v not ready after a minute", args)
		}
		time.Sleep(50 * time.Millisecond)
	}

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

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("picloud %v stopped with %v, want a clean shutdown", args, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no shutdown within a minute")
	}
}

// TestServe: serve requires API keys; the operator's first one comes from
// picloud keys create against the database.
func TestServe(t *testing.T) {
	url := dbtest.CreateDatabase(t)
	if err := runCLI(context.Background(), t, "migrate", "--database-url", url); err != nil {
		t.Fatal(err)
	}
	key, err := runKeys(t, "keys", "--database-url", url, "create", "--scope", "admin")
	if err != nil {
		t.Fatal(err)
	}
	serveAndCall(t, strings.TrimSpace(key), "serve", "--database-url", url)
}

// TestDevOnDatabaseURL: dev runs with authentication off by default.
func TestDevOnDatabaseURL(t *testing.T) {
	serveAndCall(t, "", "dev", "--database-url", dbtest.CreateDatabase(t))
}

// TestDevPrivateCluster is the README's first command on a machine with
// PostgreSQL installed and no DATABASE_URL: dev starts its own cluster in
// --data-dir, keeps the data, and stops it on exit.
func TestDevPrivateCluster(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	dataDir := t.TempDir()
	serveAndCall(t, "", "dev", "--data-dir", dataDir)
	if _, err := os.Stat(filepath.Join(dataDir, "pg", "PG_VERSION")); err != nil {
		t.Errorf("no cluster in the data directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "pg", "postmaster.pid")); !os.IsNotExist(err) {
		t.Errorf("PostgreSQL still running after dev exited (postmaster.pid: %v)", err)
	}
	// A second start finds the function deployed by the first.
	serveAndCall(t, "", "dev", "--data-dir", dataDir)
}

func TestMigrateCommand(t *testing.T) {
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
