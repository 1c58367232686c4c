package main

import (
	"context"
	"log/slog"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/picloud/picloud/executor"
)

// TestMain lets the sandbox children, this test binary re-executed, serve
// instead of running the tests.
func TestMain(m *testing.M) {
	executor.RunSandboxIfChild()
	os.Exit(m.Run())
}

// testDatabase opens the server the harness would measure on and a fresh
// database on it, both gone when the test ends.
func testDatabase(ctx context.Context, t *testing.T) (*server, *database) {
	t.Helper()
	srv, err := openServer(ctx, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.close)
	db, err := srv.freshDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.drop)
	return srv, db
}

// checkResults fails the test unless there are want results, each a finite
// value (above zero, or at least zero when zeroOK) of a scenario named with
// scenarioPrefix, and each baseline named was found in the same run.
func checkResults(t *testing.T, rs []result, scenarioPrefix string, want int, zeroOK bool) {
	t.Helper()
	rs = withBaselines(rs)
	if len(rs) != want {
		t.Errorf("%d results, want %d", len(rs), want)
	}
	for _, r := range rs {
		t.Logf("%s %s = %.3f %s (%s, ratio %.2f)", r.Scenario, r.Metric, r.Value, r.Unit, r.Baseline, r.Ratio)
		if !strings.HasPrefix(r.Scenario, scenarioPrefix) || r.Value < 0 || !zeroOK && r.Value == 0 || math.IsInf(r.Value, 0) || math.IsNaN(r.Value) {
			t.Errorf("%s %s = %v", r.Scenario, r.Metric, r.Value)
		}
		if r.baselineMetric != "" && (r.Baseline == "" || r.Ratio < 0 || math.IsInf(r.Ratio, 0) || math.IsNaN(r.Ratio)) {
			t.Errorf("%s: baseline %q not found", r.Metric, r.baselineMetric)
		}
	}
}
