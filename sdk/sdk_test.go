// Package sdk_test checks the client SDKs in sdk/ against a live platform,
// so that `go test ./...` is the only command needed to know they still
// build, still match openapi/, and still talk to the server correctly.
package sdk_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gofrs/flock"

	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/internal/dbtest"
	"github.com/picloud/picloud/internal/platformtest"
)

func TestMain(m *testing.M) {
	executor.RunSandboxIfChild()
	os.Exit(dbtest.Main(m))
}

// tsDir is the TypeScript package, relative to this package's directory,
// where go test runs.
const tsDir = "typescript"

// TestTypeScript installs the TypeScript SDK's dependencies when needed,
// checks that its generated schema matches openapi/openapi.yaml, compiles
// it (which also checks its @ts-expect-error lines: mistakes the types must
// keep rejecting), and runs its smoke test against a fresh platform.
func TestTypeScript(t *testing.T) {
	requireTools(t, "node", "npm")
	// A cold npm cache downloads about 10 MB; a warm run needs a few
	// seconds, most of them in tsc.
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	lockPackage(t)

	if stale, why := nodeModulesStale(); stale {
		t.Logf("running npm ci: %s", why)
		run(ctx, t, "npm ci failed", nil, "npm", "ci", "--no-audit", "--no-fund", "--prefer-offline")
	}

	// openapi-typescript --check generates in memory and compares with
	// src/schema.d.ts, so the test never writes into the tree.
	start := time.Now()
	if out, err := command(ctx, nil, "npm", "run", "--silent", "generate", "--", "--check").CombinedOutput(); err != nil {
		t.Fatalf("src/schema.d.ts does not match openapi/openapi.yaml (%v)\n%s\nregenerate with: cd sdk/typescript && npm run generate", err, out)
	}
	t.Logf("schema check: %v", time.Since(start).Round(10*time.Millisecond))

	// tsc never deletes outputs, and the glob below would run a compiled
	// test whose source is gone.
	if err := os.RemoveAll(filepath.Join(tsDir, "dist")); err != nil {
		t.Fatal(err)
	}
	run(ctx, t, "tsc failed (an unused @ts-expect-error means the types no longer reject that mistake)", nil, "npm", "run", "--silent", "build")

	tests, err := filepath.Glob(filepath.Join(tsDir, "dist", "test", "*.test.js"))
	if err != nil || len(tests) == 0 {
		t.Fatalf("no compiled tests in %s/dist/test (%v)", tsDir, err)
	}
	// Auth on, as serve runs, so the smoke test also covers keys.
	p := platformtest.Start(t, platformtest.Options{Processes: true, Auth: true})
	env := []string{"PICLOUD_URL=" + p.URL, "PICLOUD_API_KEY=" + p.AdminKey}
	args := []string{"--test", "--test-reporter=spec", "--test-timeout=30000"}
	for _, file := range tests {
		args = append(args, strings.TrimPrefix(file, tsDir+string(filepath.Separator)))
	}
	out := run(ctx, t, "the TypeScript smoke test failed", env, "node", args...)
	// Skipped tests exit 0 too, and the smoke test skips what its
	// environment does not reach (no PICLOUD_URL, no PICLOUD_API_KEY).
	if pass, skipped := summary(out, "pass"), summary(out, "skipped"); pass == "" || pass == "0" || skipped != "0" {
		t.Fatalf("the TypeScript smoke test passed %q tests and skipped %q:\n%s", pass, skipped, out)
	}
	if testing.Verbose() {
		t.Logf("node --test:\n%s", out)
	}
}

// requireTools skips the test when a tool is missing, so that a machine
// without Node still runs the rest of the suite; PICLOUD_TEST_REQUIRE=1
// (as in CI) turns the skip into a failure.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "the TypeScript SDK test needs " + strings.Join(missing, " and ") + " (Node.js 20 or later) on PATH"
	if os.Getenv("PICLOUD_TEST_REQUIRE") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg + "; skipped (set PICLOUD_TEST_REQUIRE=1 to fail instead)")
}

// lockPackage serializes test processes that use the same checkout: two
// concurrent npm ci runs, or a build rewriting dist/ under a running smoke
// test, would break each other. The lock file lives outside the tree so that
// it needs no .gitignore entry.
func lockPackage(t *testing.T) {
	t.Helper()
	abs, err := filepath.Abs(tsDir)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(abs))
	lock := flock.New(filepath.Join(os.TempDir(), "picloud-sdk-ts-"+hex.EncodeToString(sum[:8])+".lock"))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	if _, err := lock.TryLockContext(ctx, 100*time.Millisecond); err != nil {
		t.Fatalf("lock %s: %v", lock.Path(), err)
	}
	t.Cleanup(func() { _ = lock.Unlock() })
}

// nodeModulesStale reports whether npm ci must run. npm writes
// node_modules/.package-lock.json last, so its absence also catches an
// install that was interrupted; a package-lock.json newer than it means
// the dependencies changed since (a pull, a branch switch).
func nodeModulesStale() (bool, string) {
	installed, err := os.Stat(filepath.Join(tsDir, "node_modules", ".package-lock.json"))
	if errors.Is(err, os.ErrNotExist) {
		return true, "node_modules is missing or incomplete"
	}
	if err != nil {
		return true, err.Error()
	}
	lock, err := os.Stat(filepath.Join(tsDir, "package-lock.json"))
	if err != nil {
		return true, err.Error()
	}
	if lock.ModTime().After(installed.ModTime()) {
		return true, "package-lock.json is newer than node_modules"
	}
	return false, ""
}

// summary reads a count from the summary of node's spec reporter, as in
// "ℹ pass 9"; "" when the line is missing.
func summary(out []byte, name string) string {
	m := regexp.MustCompile(`(?m)^\S*\s*` + name + ` (\d+)\s*$`).FindSubmatch(out)
	if m == nil {
		return ""
	}
	return string(m[1])
}

func command(ctx context.Context, env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = tsDir
	cmd.Env = append(os.Environ(), "NO_UPDATE_NOTIFIER=1", "NPM_CONFIG_UPDATE_NOTIFIER=false")
	cmd.Env = append(cmd.Env, env...)
	// npm and node --test start children of their own, which a cancel
	// does not reach; they may hold the output pipe open, and Wait must not
	// wait for them past the deadline.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs a command in the TypeScript package and returns its combined
// output, failing the test with that output when it fails.
func run(ctx context.Context, t *testing.T, what string, env []string, name string, args ...string) []byte {
	t.Helper()
	start := time.Now()
	out, err := command(ctx, env, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %s %s: %v\n%s", what, name, strings.Join(args, " "), err, out)
	}
	t.Logf("%s %s: %v", name, strings.Join(args, " "), time.Since(start).Round(10*time.Millisecond))
	return out
}
