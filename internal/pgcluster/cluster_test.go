package pgcluster

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestFindNotFound(t *testing.T) {
	empty := t.TempDir()
	_, err := find(empty, []string{filepath.Join(empty, "*", "bin")})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	for _, want := range []string{"DATABASE_URL", "apt-get install postgresql", "never downloads", filepath.Join(empty, "*", "bin")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func fakeInstall(t *testing.T, dir string, tools ...string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range tools {
		if err := os.WriteFile(filepath.Join(dir, tool), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFindPicksHighestCompleteVersion(t *testing.T) {
	root := t.TempDir()
	all := []string{"postgres", "initdb", "pg_ctl"}
	fakeInstall(t, filepath.Join(root, "9.6", "bin"), all...)
	fakeInstall(t, filepath.Join(root, "10", "bin"), all...)
	fakeInstall(t, filepath.Join(root, "17", "bin"), "pg_ctl") // client-only: unusable
	b, err := find("", []string{filepath.Join(root, "*", "bin")})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "10", "bin"); b.Dir != want || b.Initdb != filepath.Join(want, "initdb") {
		t.Errorf("found %+v, want dir %s", b, want)
	}
}

func TestFindPrefersPathAndResolvesSymlinks(t *testing.T) {
	root := t.TempDir()
	real := filepath.Join(root, "pg", "bin")
	fakeInstall(t, real, "postgres", "initdb", "pg_ctl")
	bin := filepath.Join(root, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// Only pg_ctl is linked, as distributions sometimes do: postgres must
	// then be found next to the link target.
	if err := os.Symlink(filepath.Join(real, "pg_ctl"), filepath.Join(bin, "pg_ctl")); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(root, "other", "16", "bin")
	fakeInstall(t, other, "postgres", "initdb", "pg_ctl")
	b, err := find("relative:"+bin, []string{filepath.Join(root, "other", "*", "bin")})
	if err != nil {
		t.Fatal(err)
	}
	if b.Dir != real {
		t.Errorf("dir = %s, want %s", b.Dir, real)
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string][]int{"9.6": {9, 6}, "16": {16}, "16beta1": {16}, "x": nil} {
		if got := parseVersion(in); !slices.Equal(got, want) {
			t.Errorf("parseVersion(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestURLParsesAsUnixSocket(t *testing.T) {
	c := &Cluster{socketDir: "/tmp/some dir/with%odd&chars"}
	cfg, err := pgx.ParseConfig(c.URL("my db"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != c.socketDir || cfg.Database != "my db" || cfg.User != "postgres" || cfg.Port != port {
		t.Errorf("parsed host=%q db=%q user=%q port=%d from %s", cfg.Host, cfg.Database, cfg.User, cfg.Port, c.URL("my db"))
	}
}

func TestSocketDirFor(t *testing.T) {
	short := "/tmp/pg"
	if got := socketDirFor(short); got != short {
		t.Errorf("socketDirFor(%q) = %q, want the data dir", short, got)
	}
	long := "/tmp/" + strings.Repeat("x", 100)
	got := socketDirFor(long)
	if got == long || len(got)+len("/.s.PGSQL.5432") > maxSocketPath || !strings.HasPrefix(got, os.TempDir()) {
		t.Errorf("socketDirFor(long) = %q, want a short dir under %s", got, os.TempDir())
	}
	if again := socketDirFor(long); again != got {
		t.Errorf("socket dir not stable: %q then %q", got, again)
	}
}

// testDataDir returns a fresh directory path. Under t.TempDir the parents
// are 0700; Start must make them traversable when it runs as root.
func testDataDir(t *testing.T) string {
	t.Helper()
	if _, err := Find(); err != nil {
		// Only a deliberate choice of an external server excuses not
		// testing the private cluster.
		if os.Getenv("DATABASE_URL") != "" {
			t.Skipf("DATABASE_URL is set and there is no local installation: %v", err)
		}
		t.Fatal(err)
	}
	return filepath.Join(t.TempDir(), "pg")
}

func startCluster(t *testing.T, dir string) *Cluster {
	t.Helper()
	start := time.Now()
	c, err := Start(t.Context(), Options{DataDir: dir, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Start took %v", time.Since(start))
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Errorf("cleanup stop: %v", err)
		}
	})
	return c
}

func exec1(t *testing.T, c *Cluster, sql string) string {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var out string
	if err := conn.QueryRow(ctx, sql).Scan(&out); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func TestLifecycle(t *testing.T) {
	dir := testDataDir(t)
	c := startCluster(t, dir)
	if got := exec1(t, c, "SELECT 1::text"); got != "1" {
		t.Fatalf("SELECT 1 = %q", got)
	}
	conn, err := pgx.Connect(t.Context(), c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), "CREATE TABLE kept AS SELECT 'survives'::text AS v"); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())
	if got := exec1(t, c, "SHOW fsync"); got != "off" {
		t.Errorf("ephemeral cluster has fsync=%s", got)
	}
	if got := exec1(t, c, "SHOW listen_addresses"); got != "" {
		t.Errorf("listen_addresses = %q, want socket only", got)
	}

	for range 2 { // idempotent
		if err := c.EnsureDatabase(t.Context(), "my-app"); err != nil {
			t.Fatal(err)
		}
	}
	conn, err = pgx.Connect(t.Context(), c.URL("my-app"))
	if err != nil {
		t.Fatalf("connect to ensured database: %v", err)
	}
	conn.Close(t.Context())

	// A second Start while running must reuse the server, not fail.
	again := startCluster(t, dir)
	if got := exec1(t, again, "SELECT v FROM kept"); got != "survives" {
		t.Fatalf("reused cluster sees %q", got)
	}

	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	restarted := startCluster(t, dir)
	if got := exec1(t, restarted, "SELECT v FROM kept"); got != "survives" {
		t.Fatalf("after restart got %q", got)
	}
}

func TestStalePostmasterPID(t *testing.T) {
	// An existing empty directory is initialized in place.
	dir := filepath.Dir(testDataDir(t))
	c := startCluster(t, dir)
	pidFile := filepath.Join(dir, "postmaster.pid")
	content, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Simulate a crash: the PID file survives, its process does not.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(content), "\n", 2)
	stale := strconv.Itoa(dead.Process.Pid) + "\n" + lines[1]
	if err := os.WriteFile(pidFile, []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.acct.chown(pidFile); err != nil {
		t.Fatal(err)
	}
	c2 := startCluster(t, dir)
	if got := exec1(t, c2, "SELECT 1::text"); got != "1" {
		t.Fatalf("SELECT 1 = %q", got)
	}
}

func TestLongDataDirUsesShortSocketDir(t *testing.T) {
	dir := filepath.Join(testDataDir(t), strings.Repeat("long-path-", 10))
	// Registered first so it runs after the cluster has stopped.
	t.Cleanup(func() { os.RemoveAll(socketDirFor(dir)) })
	c := startCluster(t, dir)
	if c.SocketDir() == c.DataDir() {
		t.Fatalf("socket dir is the %d-byte data dir", len(dir))
	}
	if got := exec1(t, c, "SELECT 1::text"); got != "1" {
		t.Fatalf("SELECT 1 = %q", got)
	}
}

func TestStartRejectsForeignDirectory(t *testing.T) {
	dir := testDataDir(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Start(t.Context(), Options{DataDir: dir})
	if err == nil || !strings.Contains(err.Error(), "PG_VERSION") {
		t.Fatalf("err = %v, want a complaint about a non-cluster directory", err)
	}
}

// A SIGKILLed server leaves postmaster.pid behind; the next Start must see
// the PID is dead and let the server do crash recovery.
func TestCrashedServerRecovers(t *testing.T) {
	dir := testDataDir(t)
	c := startCluster(t, dir)
	content, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(content), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			t.Fatalf("postmaster %d still exists: %s", pid, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c2 := startCluster(t, c.DataDir())
	if got := exec1(t, c2, "SELECT 1::text"); got != "1" {
		t.Fatalf("SELECT 1 = %q", got)
	}
}

// TestCancelWhileStarting cancels Start while pg_ctl is starting the
// server, as a Ctrl+C does: Start must return the cancellation and leave no
// server running. Killing pg_ctl (exec's reaction to a cancelled context)
// instead returned "pg_ctl start: signal: killed" and left the postmaster it
// had forked running, owned by nobody.
func TestCancelWhileStarting(t *testing.T) {
	dir := testDataDir(t)
	// A first Start initializes the directory, so that the second one
	// spends its time in pg_ctl start.
	c := startCluster(t, dir)
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		// The postmaster writes its PID file as it starts; pg_ctl -w is
		// then still waiting for it to accept connections.
		for ctx.Err() == nil {
			if _, err := os.Stat(filepath.Join(dir, "postmaster.pid")); err == nil {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	_, err := Start(ctx, Options{DataDir: dir, Ephemeral: true})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Start cancelled while starting: %v, want context.Canceled", err)
	}
	running, err := c.running(context.Background())
	if err != nil || running {
		t.Errorf("after a cancelled Start: running %v, %v; want no server", running, err)
		_ = c.Stop(context.Background())
	}
}
