package picloudtest

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	tclog "github.com/testcontainers/testcontainers-go/log"
)

// fakeNoDocker, in the environment of a copy of this test binary, makes
// the Docker check fail: testcontainers falls back from a bad DOCKER_HOST
// to the default socket, so the environment alone cannot hide a running
// engine.
const fakeNoDocker = "PICLOUDTEST_FAKE_NO_DOCKER"

func init() {
	if os.Getenv(fakeNoDocker) == "1" {
		dockerCheck = func(tclog.Logger) error { return errors.New("Cannot connect to the Docker daemon (simulated)") }
	}
}

// TestUnavailable runs Start without Docker in a copy of the test binary:
// it must skip with instructions, or fail under PICLOUD_TEST_REQUIRE=1.
func TestUnavailable(t *testing.T) {
	if os.Getenv(fakeNoDocker) == "1" {
		Start(t)
		t.Fatal("Start returned without Docker")
	}
	for _, tc := range []struct {
		name     string
		require  string
		wantFail bool
		want     []string
	}{
		{"skips", "", false, []string{
			"--- SKIP: TestUnavailable", "Cannot connect to the Docker daemon (simulated)",
			"either start Docker", "or set PICLOUD_TEST_DATABASE_URL", "Set PICLOUD_TEST_REQUIRE=1 to fail instead of skipping.",
		}},
		{"fails when required", "1", true, []string{
			"--- FAIL: TestUnavailable", "start Docker", "PICLOUD_TEST_REQUIRE=1 is set, so this is a failure rather than a skip.",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, failed := runWithoutDocker(t, tc.require, "-test.run=^TestUnavailable$")
			if failed != tc.wantFail {
				t.Errorf("failed %v, want %v", failed, tc.wantFail)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestExamplesUnavailable runs the package's examples without Docker in a
// copy of the test binary: Main must leave them out and say why, keeping
// the tests and the user's own -test.skip, or keep them under
// PICLOUD_TEST_REQUIRE=1, where they fail.
func TestExamplesUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		require  string
		args     []string
		wantFail bool
		want     []string
		notWant  []string
	}{
		{"skipped", "", []string{"-test.run=^(TestWithDatabase|Example.*)$"}, false, []string{
			"picloudtest: skipping the examples", "Cannot connect to the Docker daemon (simulated)",
			"either start Docker", "or set PICLOUD_TEST_DATABASE_URL", "Set PICLOUD_TEST_REQUIRE=1 to fail instead of skipping.",
			"--- PASS: TestWithDatabase",
		}, []string{"=== RUN   Example"}},
		{"with the user's skip", "", []string{"-test.run=^(TestWithDatabase|ExampleNew)$", "-test.skip=^TestWithDatabase$"}, false, []string{
			"picloudtest: skipping the examples", "no tests to run",
		}, []string{"=== RUN"}},
		{"fail when required", "1", []string{"-test.run=^ExampleNew$"}, true, []string{
			"=== RUN   ExampleNew", "Cannot connect to the Docker daemon (simulated)", "either start Docker",
		}, []string{"skipping the examples"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, failed := runWithoutDocker(t, tc.require, tc.args...)
			if failed != tc.wantFail {
				t.Errorf("failed %v, want %v:\n%s", failed, tc.wantFail, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}
}

// runWithoutDocker runs a copy of the test binary with args, Docker
// simulated away, no database URL, and PICLOUD_TEST_REQUIRE set to require,
// and returns its output and whether it failed.
func runWithoutDocker(t *testing.T, require string, args ...string) (out string, failed bool) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], append([]string{"-test.v", "-test.count=1"}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, EnvDatabaseURL+"=") && !strings.HasPrefix(kv, EnvRequire+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, fakeNoDocker+"=1", EnvRequire+"="+require)
	b, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run the test binary: %v", err)
	}
	return string(b), err != nil
}

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://u:p@localhost:5432/postgres?sslmode=disable", "postgres://u:p@localhost:5432/x?sslmode=disable"},
		{"postgresql://localhost/db?dbname=other&sslmode=disable", "postgresql://localhost/x?sslmode=disable"},
		{"postgres://localhost", "postgres://localhost/x"},
		{"postgres://h1:5432,h2:5432/db?sslmode=disable", "postgres://h1:5432,h2:5432/x?sslmode=disable"},
		{"postgres://[::1]:5432,[::2]:5432/db?sslmode=disable", "postgres://[::1]:5432,[::2]:5432/db?sslmode=disable&dbname=x"},
		{"host=localhost dbname=postgres", "host=localhost dbname=postgres dbname=x"},
	} {
		if got := withDatabase(tc.dsn, "x"); got != tc.want {
			t.Errorf("withDatabase(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
	}
}
