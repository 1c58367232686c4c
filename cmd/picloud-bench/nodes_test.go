package main

import (
	"context"
	"testing"
	"time"
)

// TestNodeScenarios builds picloud and runs the idle and scale-out
// scenarios at their smallest against real node processes, checking that
// every node was measured and every ratio found its baseline.
func TestNodeScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("builds picloud and starts node processes")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	srv, db := testDatabase(ctx, t)
	if got := adminURL(&platform{pool: db.pool}); got != srv.admin {
		t.Fatalf("adminURL = %q, want the server's %q", got, srv.admin)
	}
	// go test runs in the package's directory; the harness runs from the
	// repository's root.
	t.Chdir("../..")
	started := time.Now()
	bin, cleanup, err := buildPicloud(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	t.Logf("built picloud in %v", time.Since(started).Round(time.Millisecond))

	started = time.Now()
	idle, err := bin.measureIdle(ctx, srv.admin, 2*time.Second, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, idle, "idle", 4, true)
	for _, r := range idle {
		// River's default client runs its leader's maintenance at once.
		if r.Metric == idleBaseline && r.Value == 0 {
			t.Errorf("%s = 0: nothing was counted", r.Metric)
		}
	}

	t.Logf("idle took %v", time.Since(started).Round(time.Millisecond))
	started = time.Now()
	const n = 300
	scale, err := bin.measureScaleOut(ctx, srv.admin, 2, n, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scale-out took %v", time.Since(started).Round(time.Millisecond))
	checkResults(t, scale, "scale-out", 6, false)
	for _, r := range scale {
		if r.Value == 0 || r.Unit == "invocations" && r.Value != n {
			t.Errorf("%s = %v", r.Metric, r.Value)
		}
	}
}
