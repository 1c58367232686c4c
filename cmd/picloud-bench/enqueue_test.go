package main

import (
	"context"
	"testing"
	"time"
)

// TestEnqueue runs the enqueue scenario at a small size, checking that
// every row has a sane value and names a baseline the run measured.
func TestEnqueue(t *testing.T) {
	if testing.Short() {
		t.Skip("creates databases and starts a platform")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	_, db := testDatabase(ctx, t)
	p, err := startPlatform(ctx, db.pool, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()

	rs, err := measureEnqueue(ctx, p, 500)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs, enqueueScenario, 4, false)
	// The target names one of these rows: renaming it would leave the
	// target "not measured".
	found := false
	for _, tg := range targets(settingsFor(false)) {
		for _, r := range rs {
			found = found || tg.Scenario == r.Scenario && tg.Metric == r.Metric
		}
	}
	if !found {
		t.Error("no target names a row of the enqueue scenario")
	}
}
