package main

import (
	"context"
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
	_, db := testDatabase(ctx, t)
	p, err := startPlatform(ctx, db.pool, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()

	var rs []result
	for _, measure := range []func() ([]result, error){
		func() ([]result, error) { return measureSQLBurndown(ctx, p, 2000, burndownScenario) },
		func() ([]result, error) { return measureInProcessBurndown(ctx, p, 2000, 2) },
		func() ([]result, error) { return measureRiverBurndown(ctx, p, 2000) },
		func() ([]result, error) { return measureRiverWake(ctx, p, 20, 5*time.Millisecond, 5) },
	} {
		got, err := measure()
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, got...)
	}
	// Every River row names its own scenario; PiCloud's burn-down rows
	// name River's as their baselines.
	checkResults(t, rs, "", 12, false)
}
