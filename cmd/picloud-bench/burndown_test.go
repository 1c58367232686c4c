package main

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"
)

// TestBurndownAndRiver runs the SQL burn-down, its River-alone baseline
// and River's wake runs at a small size, checking that every row has a
// sane value and every baseline is found.
func TestBurndownAndRiver(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sandboxes and River clients on fresh databases")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	srv, err := openServer(ctx, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	db, err := srv.freshDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.drop()
	p, err := startPlatform(ctx, db.pool, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()

	var rs []result
	for _, measure := range []func() ([]result, error){
		func() ([]result, error) { return measureSQLBurndown(ctx, p, 2000) },
		func() ([]result, error) { return measureRiverBurndown(ctx, p, 2000) },
		func() ([]result, error) { return measureRiverWake(ctx, p, 20, 5*time.Millisecond, 5) },
	} {
		got, err := measure()
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, got...)
	}
	rs = withBaselines(rs)
	if len(rs) != 10 {
		t.Errorf("%d results, want 10", len(rs))
	}
	for _, r := range rs {
		t.Logf("%s %s = %.3f %s (%s, ratio %.2f)", r.Scenario, r.Metric, r.Value, r.Unit, r.Baseline, r.Ratio)
		if r.Value <= 0 || math.IsInf(r.Value, 0) || math.IsNaN(r.Value) {
			t.Errorf("%s %s = %v", r.Scenario, r.Metric, r.Value)
		}
		if r.baselineMetric != "" && (r.Ratio <= 0 || math.IsInf(r.Ratio, 0) || !strings.HasPrefix(r.Baseline, riverScenario+" ")) {
			t.Errorf("%s: baseline %q not found", r.Metric, r.baselineMetric)
		}
	}
}
