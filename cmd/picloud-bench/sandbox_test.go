package main

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/picloud/picloud/executor"
)

// TestMain lets the sandbox scenario's children, this test binary
// re-executed, serve instead of running the tests.
func TestMain(m *testing.M) {
	executor.RunSandboxIfChild()
	os.Exit(m.Run())
}

// TestSandbox runs the sandbox scenario at its smallest and checks that
// every runtime ran and every ratio found its baseline.
func TestSandbox(t *testing.T) {
	if testing.Short() {
		t.Skip("runs fib(25) a dozen times")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	rs, err := measureSandbox(ctx, 20, sandboxSizes{rounds: 1, roundTime: 5 * time.Millisecond, fibRounds: 1})
	if err != nil {
		t.Fatal(err)
	}
	rs = withBaselines(rs)
	want := 13
	if _, ok := processCPU(); ok {
		want += 4
	}
	if len(rs) != want {
		t.Errorf("%d results, want %d", len(rs), want)
	}
	for _, r := range rs {
		t.Logf("%s = %.3f %s (%s, ratio %.2f)", r.Metric, r.Value, r.Unit, r.Baseline, r.Ratio)
		if r.Scenario != "sandbox" || r.Value <= 0 || math.IsInf(r.Value, 0) || math.IsNaN(r.Value) {
			t.Errorf("%s %s = %v", r.Scenario, r.Metric, r.Value)
		}
		if r.baselineMetric != "" && (r.Ratio <= 0 || math.IsInf(r.Ratio, 0) || !strings.HasPrefix(r.baselineMetric, "sandbox ")) {
			t.Errorf("%s: baseline %q not found", r.Metric, r.baselineMetric)
		}
	}
}
