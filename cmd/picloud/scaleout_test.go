package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/internal/dbtest"
	"github.com/picloud/picloud/internal/pgcluster"
	"github.com/picloud/picloud/queue"
)

// testNodeEnv makes this test binary run as a worker node (see TestMain),
// so that a test can start real worker processes and kill them.
const testNodeEnv = "PICLOUD_TEST_NODE"

// runTestNode runs the node the environment asks for, until SIGTERM.
func runTestNode() {
	ctx, stop := signalContext()
	defer stop()
	flags := nodeFlags{DrainTimeout: 5 * time.Second, Migrate: false}
	if d, err := time.ParseDuration(os.Getenv("PICLOUD_DRAIN_TIMEOUT")); err == nil {
		flags.DrainTimeout = d
	}
	work := &workerFlags{Sandbox: "inprocess", Concurrency: 2, NodeID: os.Getenv("PICLOUD_NODE_ID")}
	err := node{worker: work, nodeFlags: flags}.run(ctx, slog.New(slog.DiscardHandler), os.Getenv("DATABASE_URL"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "test node:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func startWorkerProcess(t *testing.T, databaseURL, id string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), testNodeEnv+"=worker", "DATABASE_URL="+databaseURL, "PICLOUD_NODE_ID="+id)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	return cmd
}

func migratedPool(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	url := dbtest.CreateDatabase(t)
	pool, err := openPool(context.Background(), url, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := queue.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return pool, url
}

// TestWorkerKilledMidInvocation: one api node and two worker processes;
// one worker is killed with SIGKILL while it runs an invocation. Every
// invocation still reaches a final status, none is lost, and only the
// interrupted ones ran twice.
func TestWorkerKilledMidInvocation(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts processes")
	}
	ctx := context.Background()
	pool, url := migratedPool(t)
	if _, err := pool.Exec(ctx, `UPDATE picloud.settings SET rescue_grace = '1 second'`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := catalog.New(pool).PutFunction(ctx, "slow", `function handle(req) while os.clock() < 0.2 do end return req.payload.i end`,
		catalog.FunctionOptions{MaxAttempts: 3, Timeout: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	victim := startWorkerProcess(t, url, "victim")
	startWorkerProcess(t, url, "survivor")

	const n = 100
	if _, err := pool.Exec(ctx, `SELECT picloud.invoke('slow', jsonb_build_object('i', g)) FROM generate_series(1, $1) g`, n); err != nil {
		t.Fatal(err)
	}
	// Kill the victim while it runs an invocation.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var running int
		// River's row stays running until its completer flushes, after
		// the invocation finished: the invocation itself must be running.
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM picloud.river_job j
			JOIN picloud.invocations i ON i.id = (j.args->>'invocation_id')::bigint
			WHERE j.state = 'running' AND j.attempted_by[array_length(j.attempted_by, 1)] = 'victim'
			  AND i.status = 'running'`).Scan(&running); err != nil {
			t.Fatal(err)
		}
		if running > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the victim never ran anything")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := victim.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()

	deadline = time.Now().Add(90 * time.Second)
	for {
		var final int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM picloud.invocations WHERE status IN ('succeeded', 'failed', 'timed_out', 'cancelled')`).Scan(&final); err != nil {
			t.Fatal(err)
		}
		if final == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d invocations final 90 s after the kill", final, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var succeeded, rescued, extraAttempts int
	var lastRescue time.Time
	err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'succeeded'),
		       count(*) FILTER (WHERE errors::text LIKE '%stopped responding%'),
		       coalesce(sum(attempt - 1), 0),
		       coalesce((SELECT max((e->>'at')::timestamptz) FROM picloud.invocations, jsonb_array_elements(errors) e
		                 WHERE e->>'error' LIKE '%stopped responding%'), now())
		FROM picloud.invocations`).Scan(&succeeded, &rescued, &extraAttempts, &lastRescue)
	if err != nil {
		t.Fatal(err)
	}
	if succeeded != n {
		t.Errorf("%d of %d succeeded", succeeded, n)
	}
	if rescued == 0 {
		t.Errorf("no invocation shows the rescue, though the victim was killed mid-run")
	}
	if extraAttempts != rescued {
		t.Errorf("%d extra attempts for %d rescued invocations: something ran twice without cause", extraAttempts, rescued)
	}
	// Due at the run's start + 2 s timeout + 1 s grace; the rerun then
	// waits its turn behind the rest of the queue.
	if took := lastRescue.Sub(killed); took > 10*time.Second {
		t.Errorf("the interrupted invocations were taken back %v after the kill, want about 3 s", took)
	}
	t.Logf("%d invocations, %d rescued, taken back %v after the kill", n, rescued, lastRescue.Sub(killed).Round(time.Millisecond))
}

// TestDatabaseRestart: after PostgreSQL restarts, a node reconnects and
// LISTENs again by itself, and work enqueued right after the restart runs
// promptly, not at River's next poll ten minutes later.
func TestDatabaseRestart(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	ctx := context.Background()
	dir := t.TempDir()
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(dir, "pg"), Ephemeral: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Stop(ctx)
	if err := cluster.EnsureDatabase(ctx, "picloud"); err != nil {
		t.Fatal(err)
	}
	url := cluster.URL("picloud")
	addr := freeAddr(t)
	nodeCtx, stopNode := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- node{api: &apiFlags{Addr: addr}, worker: &workerFlags{Sandbox: "inprocess", Concurrency: 2},
			nodeFlags: nodeFlags{DrainTimeout: 5 * time.Second, Migrate: true}}.run(nodeCtx, slog.New(slog.DiscardHandler), url, nil)
	}()
	defer func() {
		stopNode()
		<-done
	}()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	waitReady(t, "http://"+addr, done)
	if _, _, err := catalog.New(pool).PutFunction(ctx, "echo", `function handle(req) return req.payload end`, catalog.FunctionOptions{}); err != nil {
		t.Fatal(err)
	}

	if err := cluster.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // the node notices: its connections fail
	restarted, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(dir, "pg"), Ephemeral: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer restarted.Stop(ctx)
	var id int64
	for attempt := 0; ; attempt++ {
		err = pool.QueryRow(ctx, `SELECT picloud.invoke('echo', '{"after": "restart"}')`).Scan(&id)
		if err == nil {
			break
		}
		if attempt > 50 {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	enqueued := time.Now()
	for {
		var status string
		if err := pool.QueryRow(ctx, `SELECT status FROM picloud.invocations WHERE id = $1`, id).Scan(&status); err == nil && status == "succeeded" {
			break
		}
		if time.Since(enqueued) > 60*time.Second {
			t.Fatalf("the invocation enqueued after the restart did not run within a minute (status %q)", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("ran %v after being enqueued right after the restart", time.Since(enqueued).Round(time.Millisecond))
	// The listener reconnects within a quarter of a second and wakes River's
	// producers (queue/listen.go); measured 100-450 ms. 3 s leaves room for
	// -race on a busy machine while still failing the 2-9 s of a listener
	// that waits for its own backoff or a lost wake-up.
	if took := time.Since(enqueued); took > 3*time.Second {
		t.Errorf("took %v: the wake-up after the restart was late", took)
	}
}

func waitReady(t *testing.T, base string, done chan error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if ok := getOK(base + "/readyz"); ok {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("the node ended before it was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("not ready after a minute")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestIdleStatements measures, as picloud stats idle does, what idle nodes
// send to PostgreSQL, and holds it to a generous bound: the product's goal
// is at most 15 statements a minute for a serve node and for a worker.
func TestIdleStatements(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("measures for 30 seconds")
	}
	const window = 30 * time.Second
	results := make([]idleResult, 3)
	done := make(chan struct{})
	for i, role := range []string{"serve", "worker", "api"} {
		go func() {
			total, statements, err := measureIdle(context.Background(), dbtest.AdminURL(), role, 5*time.Second, window)
			results[i] = idleResult{role: role, total: total, statements: statements, err: err}
			done <- struct{}{}
		}()
	}
	for range results {
		<-done
	}
	var report strings.Builder
	if err := printIdle(&report, results, window.Minutes(), true); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + report.String())
	for _, r := range results {
		perMinute := float64(r.total) / window.Minutes()
		limit := 20.0 // 12 River listener pings + 1 queue-settings read a minute, with room for the window's edges
		if r.role == "api" {
			limit = 1
		}
		if perMinute > limit {
			t.Errorf("%s: %.1f statements/min while idle, want at most %.0f", r.role, perMinute, limit)
		}
	}
}

// TestGracefulShutdownHandsBack: a worker told to stop with SIGTERM gives
// its running invocations the drain timeout, then hands them back to the
// queue; another worker finishes them. None is lost or left running.
func TestGracefulShutdownHandsBack(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts processes")
	}
	ctx := context.Background()
	pool, url := migratedPool(t)
	if _, _, err := catalog.New(pool).PutFunction(ctx, "spin", `function handle(req) while os.clock() < req.payload.s do end return "done" end`,
		catalog.FunctionOptions{Timeout: 30 * time.Second, MaxInstructions: 10_000_000_000}); err != nil {
		t.Fatal(err)
	}
	first := startWorkerProcess(t, url, "first", "PICLOUD_DRAIN_TIMEOUT=300ms")
	if _, err := pool.Exec(ctx, `SELECT picloud.invoke('spin', '{"s": 3}') FROM generate_series(1, 2)`); err != nil {
		t.Fatal(err)
	}
	waitCount(t, pool, `SELECT count(*) FROM picloud.invocations WHERE status = 'running'`, 2)
	stopped := time.Now()
	if err := first.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("the worker exited with %v, want a clean exit", err)
	}
	if took := time.Since(stopped); took > 5*time.Second {
		t.Errorf("the worker took %v to stop with a 300 ms drain timeout", took)
	}
	var queued int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM picloud.invocations WHERE status = 'queued' AND error LIKE '%worker stopped%'`).Scan(&queued); err != nil || queued != 2 {
		t.Fatalf("%d invocations handed back, want 2 (%v)", queued, err)
	}
	startWorkerProcess(t, url, "second")
	waitCount(t, pool, `SELECT count(*) FROM picloud.invocations WHERE status = 'succeeded'`, 2)
}

func waitCount(t *testing.T, pool *pgxpool.Pool, sql string, want int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n int
		if err := pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d after a minute, want %d", sql, n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
