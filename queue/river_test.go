package queue_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/picloud/picloud/internal/platformtest"
)

// The River release and schema that PiCloud's SQL was written against.
// PiCloud's SQL inserts River's job rows itself (schedule_attempts), moves
// them between states (promote_due_jobs, discard_jobs, sweep_jobs) and
// sends River's wake-up (picloud.river_insert), all in
// sql/functions/10_transport.sql: a River upgrade may change any of that.
// When this test fails, read River's changelog and migrations, re-check
// that file, and then raise these numbers.
const (
	riverModuleChecked = "v0.51.2"
	riverSchemaChecked = 8
)

func TestRiverVersionIsTheOneChecked(t *testing.T) {
	t.Parallel()
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

// riverNames matches River's tables, its job states as SQL literals, and
// its wake-up channel.
var riverNames = regexp.MustCompile(`\briver_(job|leader|queue|client|migration)\b|\.river_insert\b|'(available|scheduled|retryable|discarded|completed)'`)

// TestOnlyTheTransportNamesRiver keeps River behind one seam: of the
// project's SQL, manifests and Go code, only sql/functions/10_transport.sql
// names River's tables, job states or channel. Tests, which check what the
// transport wrote, and the harness's River baseline (River alone, measured
// next to PiCloud) are exempt.
func TestOnlyTheTransportNamesRiver(t *testing.T) {
	t.Parallel()
	allowed := []string{
		"sql/functions/10_transport.sql",
		"cmd/picloud-bench/river.go",
	}
	var offenders []string
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("..", path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(rel) {
		case ".sql", ".yaml", ".yml":
		case ".go":
			if strings.HasSuffix(rel, "_test.go") {
				return nil
			}
		default:
			return nil
		}
		if slices.Contains(allowed, rel) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if m := riverNames.Find(data); m != nil {
			offenders = append(offenders, rel+": "+string(m))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range offenders {
		t.Errorf("%s: only sql/functions/10_transport.sql may name River's tables, states or channel; go through its functions", o)
	}
}
