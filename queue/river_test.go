package queue_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/picloud/picloud/internal/platformtest"
)

// The River release and schema that PiCloud's SQL was written against.
// PiCloud's SQL inserts River's job rows itself (schedule_attempt), moves
// them between states (promote_due, rescue_overdue, sweep) and sends
// River's wake-up (picloud.river_insert): a River upgrade may change any of
// that. When this test fails, read River's changelog and migrations, check
// every statement in sql/ that names river_job or River's channel, and
// then raise these numbers.
const (
	riverModuleChecked = "v0.51.2"
	riverSchemaChecked = 8
)

func TestRiverVersionIsTheOneChecked(t *testing.T) {
	// Test binaries carry no dependency list in their build information,
	// so the requirement is read from go.mod.
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	version := ""
	for line := range strings.Lines(string(mod)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "github.com/riverqueue/river" {
			version = f[1]
		}
	}
	if version != riverModuleChecked {
		t.Errorf("go.mod requires River %q, PiCloud's SQL was checked against %s: re-check sql/ (see this test's comment)", version, riverModuleChecked)
	}

	pool := platformtest.Database(t)
	var schema int
	if err := pool.QueryRow(context.Background(),
		`SELECT max(version) FROM picloud.river_migration WHERE line = 'main'`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if schema != riverSchemaChecked {
		t.Errorf("River's schema is at version %d, PiCloud's SQL was checked against %d: re-check sql/ (see this test's comment)", schema, riverSchemaChecked)
	}
}
