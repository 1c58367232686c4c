package main

import (
	"strings"
	"testing"
)

// TestUsageErrorIsShort: a usage error is the error and where to find
// help, not the whole usage before it.
func TestUsageErrorIsShort(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string // the lines of stderr
	}{
		{"missing arguments", []string{"fn", "deploy"},
			[]string{`picloud: error: expected "<name> <file>"`, "Run 'picloud fn deploy --help' for usage."}},
		{"unknown command", []string{"bogus"},
			[]string{`picloud: error: unexpected argument bogus, did you mean "logs"?`, "Run 'picloud --help' for usage."}},
		{"bad flag value", []string{"inv", "ls", "--status", "done"},
			[]string{`picloud: error: --status must be one of "queued","running","succeeded","failed","timed_out","cancelled" but got "done"`,
				"Run 'picloud inv ls --help' for usage."}},
		{"unknown flag", []string{"invoke", "hello", "--nope"},
			[]string{"picloud: error: unknown flag --nope", "Run 'picloud invoke --help' for usage."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runClient(t, tc.args...)
			if r.code() != exitUsage {
				t.Errorf("exit %d, want %d", r.code(), exitUsage)
			}
			if got := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("stderr:\n%s\nwant:\n%s", r.stderr, strings.Join(tc.want, "\n"))
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing (no usage)", r.stdout)
			}
		})
	}
}

// TestUnreachableServerHint: an error before any server answered says what
// to check, with the URL that was tried.
func TestUnreachableServerHint(t *testing.T) {
	url := "http://127.0.0.1:1" // nothing listens on port 1
	for _, tc := range []struct {
		name string
		env  string
		args []string
	}{
		{"flag", "", []string{"fn", "list", "--url", url}},
		{"environment", url, []string{"inv", "get", "1"}},
		{"invoke", url, []string{"invoke", "hello"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PICLOUD_URL", tc.env)
			r := runClient(t, tc.args...)
			if r.code() != exitFailure {
				t.Errorf("exit %d, want %d", r.code(), exitFailure)
			}
			want := "connection refused (is the server running? --url/PICLOUD_URL is " + url + ")"
			if r.err == nil || !strings.Contains(r.err.Error(), want) {
				t.Errorf("error %v, want it to contain %q", r.err, want)
			}
		})
	}
}
