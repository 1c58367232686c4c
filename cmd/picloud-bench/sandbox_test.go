package main

import (
	"context"
	"testing"
	"time"
)

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
	want := 13
	if _, ok := processCPU(); ok {
		want += 4
	}
	checkResults(t, rs, "sandbox", want, false)
}
