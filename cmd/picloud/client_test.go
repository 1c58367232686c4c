package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/picloud/picloud/internal/platformtest"
)

// cliResult is what one in-process run of picloud left behind.
type cliResult struct {
	stdout, stderr string
	err            error
}

func (r cliResult) code() int { return exitCode(r.err) }

// runClient runs picloud with args in-process as main does, parse errors
// included, and returns what it wrote.
func runClient(t *testing.T, args ...string) cliResult {
	t.Helper()
	var c cli
	var stdout, stderr bytes.Buffer
	exited := -1
	kctx := parse(&c, args, kong.Writers(&stdout, &stderr), kong.Exit(func(code int) { exited = code }))
	if exited >= 0 {
		return cliResult{stdout.String(), stderr.String(), withExitCode(exited, errors.New("kong exited"))}
	}
	err := run(context.Background(), kctx, slog.New(slog.DiscardHandler))
	return cliResult{stdout.String(), stderr.String(), err}
}

// ok runs picloud and fails the test unless it succeeds.
func ok(t *testing.T, args ...string) string {
	t.Helper()
	r := runClient(t, args...)
	if r.err != nil {
		t.Fatalf("picloud %s: %v (exit %d)\nstderr: %s", strings.Join(args, " "), r.err, r.code(), r.stderr)
	}
	return r.stdout
}

func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return v
}

// tableRows are the lines of a table after its header.
func tableRows(t *testing.T, out, header string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if !strings.HasPrefix(lines[0], header) {
		t.Fatalf("table header %q, want %q", lines[0], header)
	}
	return lines[1:]
}

const functionsDir = "../../testdata/functions/"

// TestClientCommands drives a function's life through the CLI against a
// server that requires API keys; the key and URL come from the environment
// as a user would set them.
func TestClientCommands(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options{Auth: true})
	t.Setenv("PICLOUD_URL", p.URL)
	t.Setenv("PICLOUD_API_KEY", p.AdminKey)

	out := ok(t, "fn", "deploy", "hello", functionsDir+"hello.lua", "--timeout", "5s", "--max-attempts", "2", "--auth", "key")
	if out != "created hello version 1 at /fn/hello\n" {
		t.Errorf("deploy printed %q", out)
	}
	if out := ok(t, "fn", "deploy", "hello", functionsDir+"hello.lua", "--timeout", "5s", "--max-attempts", "2", "--auth", "key"); out != "no changes to hello (version 1 at /fn/hello)\n" {
		t.Errorf("deploy again printed %q", out)
	}
	ok(t, "fn", "deploy", "broken", functionsDir+"error.lua")

	t.Run("fn list", func(t *testing.T) {
		rows := tableRows(t, ok(t, "fn", "list"), "NAME")
		if len(rows) != 2 || !strings.HasPrefix(rows[0], "broken ") || !regexp.MustCompile(`^hello +1 +key +5s +2 `).MatchString(rows[1]) {
			t.Errorf("rows:\n%s", strings.Join(rows, "\n"))
		}
		list := decodeJSON[struct {
			Functions []struct{ Name, Auth string }
		}](t, ok(t, "fn", "ls", "-o", "json"))
		if len(list.Functions) != 2 || list.Functions[1].Name != "hello" || list.Functions[1].Auth != "key" {
			t.Errorf("-o json: %+v", list)
		}
	})

	t.Run("fn get", func(t *testing.T) {
		source, err := os.ReadFile(functionsDir + "hello.lua")
		if err != nil {
			t.Fatal(err)
		}
		out := ok(t, "fn", "get", "hello")
		if !regexp.MustCompile(`(?m)^timeout: +5s$`).MatchString(out) || !regexp.MustCompile(`(?m)^auth: +key$`).MatchString(out) ||
			!strings.HasSuffix(out, "\n\n"+string(source)) {
			t.Errorf("fn get printed:\n%s", out)
		}
		fn := decodeJSON[struct{ Source string }](t, ok(t, "fn", "get", "hello", "-o", "json"))
		if fn.Source != string(source) {
			t.Errorf("-o json source = %q", fn.Source)
		}
	})

	var asyncID string
	t.Run("invoke", func(t *testing.T) {
		if out := ok(t, "invoke", "hello", "--data", `{"n": 1}`); out != "Hello, world!\n" {
			t.Errorf("sync invoke printed %q", out)
		}
		payload := filepath.Join(t.TempDir(), "payload.json")
		if err := os.WriteFile(payload, []byte(`[1, 2]`), 0o600); err != nil {
			t.Fatal(err)
		}
		inv := decodeJSON[struct {
			Status  string
			Payload any
		}](t, ok(t, "invoke", "hello", "-d", "@"+payload, "-o", "json"))
		if inv.Status != "succeeded" || len(inv.Payload.([]any)) != 2 {
			t.Errorf("sync invoke -o json: %+v", inv)
		}
		asyncID = strings.TrimSpace(ok(t, "invoke", "hello", "--async"))
		if _, err := strconv.ParseInt(asyncID, 10, 64); err != nil {
			t.Fatalf("async invoke printed %q, want an id", asyncID)
		}
	})

	t.Run("inv get", func(t *testing.T) {
		out := ok(t, "inv", "get", asyncID, "--wait", "10s")
		for _, want := range []string{`(?m)^id: +` + asyncID + `$`, `(?m)^status: +succeeded$`, `(?m)^result: +"Hello, world!"$`, `(?m)^trigger: +api$`} {
			if !regexp.MustCompile(want).MatchString(out) {
				t.Errorf("inv get printed no %s:\n%s", want, out)
			}
		}
		inv := decodeJSON[struct {
			ID     int64
			Status string
		}](t, ok(t, "inv", "get", asyncID, "-o", "json"))
		if strconv.FormatInt(inv.ID, 10) != asyncID || inv.Status != "succeeded" {
			t.Errorf("inv get -o json: %+v", inv)
		}
	})

	t.Run("inv ls", func(t *testing.T) {
		rows := tableRows(t, ok(t, "inv", "ls", "--function", "hello"), "ID")
		if len(rows) != 3 || !regexp.MustCompile(`^`+asyncID+` +hello +succeeded +api +1/2 `).MatchString(rows[0]) {
			t.Errorf("rows:\n%s", strings.Join(rows, "\n"))
		}
		r := runClient(t, "inv", "ls", "--function", "hello", "--status", "succeeded", "--limit", "1")
		if rows := tableRows(t, r.stdout, "ID"); r.err != nil || len(rows) != 1 || !strings.HasPrefix(r.stderr, "more: --cursor ") {
			t.Fatalf("one page: %v\n%s\n%s", r.err, r.stdout, r.stderr)
		}
		cursor := strings.TrimSpace(strings.TrimPrefix(r.stderr, "more: --cursor "))
		next := tableRows(t, ok(t, "inv", "ls", "--function", "hello", "--limit", "1", "--cursor", cursor), "ID")
		if len(next) != 1 || strings.HasPrefix(next[0], asyncID+" ") {
			t.Errorf("next page: %v", next)
		}
		page := decodeJSON[struct {
			Invocations []struct{ Function string }
			NextCursor  string `json:"next_cursor"`
		}](t, ok(t, "inv", "ls", "--function", "broken", "-o", "json"))
		if len(page.Invocations) != 0 || page.NextCursor != "" {
			t.Errorf("-o json: %+v", page)
		}
	})

	t.Run("logs", func(t *testing.T) {
		if out := ok(t, "logs", asyncID); !regexp.MustCompile(`^\S+ INFO  greeting world\n$`).MatchString(out) {
			t.Errorf("logs printed %q", out)
		}
		logs := decodeJSON[[]struct{ Level, Message string }](t, ok(t, "logs", asyncID, "-o", "json"))
		if len(logs) != 1 || logs[0].Message != "greeting world" {
			t.Errorf("logs -o json: %+v", logs)
		}
	})

	t.Run("failing function", func(t *testing.T) {
		r := runClient(t, "invoke", "broken")
		if r.code() != exitRunFail || r.stdout != "" || !regexp.MustCompile(`^invocation \d+ failed: broken:6: `).MatchString(r.err.Error()) {
			t.Fatalf("invoke broken: exit %d, %v, stdout %q", r.code(), r.err, r.stdout)
		}
		id := regexp.MustCompile(`\d+`).FindString(r.err.Error())
		if r := runClient(t, "inv", "get", id); r.code() != exitRunFail || !strings.Contains(r.stdout, "failed") {
			t.Errorf("inv get of a failed invocation: exit %d, %v\n%s", r.code(), r.err, r.stdout)
		}
		if out := ok(t, "logs", id); !strings.Contains(out, " WARN  about to fail\n") {
			t.Errorf("logs of the failed invocation: %q", out)
		}
		if r := runClient(t, "invoke", "broken", "--async"); r.code() != exitOK {
			t.Errorf("async invoke of a failing function: exit %d, %v", r.code(), r.err)
		}
	})

	t.Run("inv cancel", func(t *testing.T) {
		ok(t, "fn", "deploy", "loop", functionsDir+"loop.lua", "--timeout", "60s", "--max-instructions", "100000000000")
		id := strings.TrimSpace(ok(t, "invoke", "loop", "--async"))
		if out := ok(t, "inv", "cancel", id); out != "cancelled "+id+"\n" {
			t.Errorf("inv cancel printed %q", out)
		}
		r := runClient(t, "inv", "get", id, "--wait", "10s")
		if r.code() != exitRunFail || !strings.HasPrefix(r.err.Error(), "invocation "+id+" cancelled") {
			t.Errorf("inv get of a cancelled invocation: exit %d, %v", r.code(), r.err)
		}
		if r := runClient(t, "inv", "cancel", asyncID); r.code() != exitFailure || !strings.HasPrefix(r.err.Error(), "409 Conflict: ") {
			t.Errorf("cancelling a finished invocation: exit %d, %v", r.code(), r.err)
		}
	})

	invokeKey := p.Key(t, "invoke")
	syntaxError := filepath.Join(t.TempDir(), "bad.lua")
	if err := os.WriteFile(syntaxError, []byte("function handle(req)\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string // start of the error main prints
	}{
		{"missing function", []string{"fn", "get", "nope"}, exitNotFound, `404 Not Found: function "nope" does not exist`},
		{"invoke missing function", []string{"invoke", "nope"}, exitNotFound, `404 Not Found: function "nope" does not exist`},
		{"missing invocation", []string{"logs", "999999"}, exitNotFound, "404 Not Found: invocation 999999 does not exist"},
		{"no key", []string{"fn", "list", "--api-key", ""}, exitAuth, "401 Unauthorized: this operation needs an API key"},
		{"unknown key", []string{"inv", "ls", "--api-key", "pic_nope"}, exitAuth, "401 Unauthorized: the API key is unknown or revoked"},
		{"invoke key deploys", []string{"fn", "deploy", "other", functionsDir + "hello.lua", "--api-key", invokeKey}, exitAuth, "403 Forbidden: "},
		{"invoke key removes", []string{"fn", "rm", "hello", "--api-key", invokeKey}, exitAuth, "403 Forbidden: "},
		{"invoke key invokes", []string{"invoke", "hello", "--api-key", invokeKey}, exitOK, ""},
		{"invoke key reads logs", []string{"logs", asyncID, "--api-key", invokeKey}, exitOK, ""},
		{"syntax error", []string{"fn", "deploy", "bad", syntaxError}, exitUsage, "422 Unprocessable Entity: the source does not compile; body.source: line 2: "},
		{"invalid name", []string{"fn", "get", "Bad"}, exitUsage, "422 Unprocessable Entity: validation failed; path.name: "},
		{"payload not JSON", []string{"invoke", "hello", "--data", "{bad"}, exitUsage, "--data: not valid JSON"},
		{"missing argument", []string{"fn", "deploy", "hello"}, exitUsage, ""},
		{"missing file", []string{"fn", "deploy", "hello", "/nonexistent.lua"}, exitUsage, ""},
		{"bad status", []string{"inv", "ls", "--status", "done"}, exitUsage, ""},
		{"id not a number", []string{"inv", "get", "abc"}, exitUsage, ""},
		{"server down", []string{"fn", "list", "--url", "http://127.0.0.1:1"}, exitFailure, "request failed: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runClient(t, tc.args...)
			if r.code() != tc.code {
				t.Fatalf("exit %d (%v), want %d\nstderr: %s", r.code(), r.err, tc.code, r.stderr)
			}
			if tc.msg != "" && !strings.HasPrefix(r.err.Error(), tc.msg) {
				t.Errorf("error %q, want it to start with %q", r.err, tc.msg)
			}
			if r.err != nil && strings.Contains(r.err.Error()+r.stderr, invokeKey) {
				t.Error("the error shows the API key")
			}
		})
	}

	if out := ok(t, "fn", "rm", "hello"); out != "deleted hello\n" {
		t.Errorf("rm printed %q", out)
	}
	if r := runClient(t, "fn", "get", "hello"); r.code() != exitNotFound {
		t.Errorf("get after rm: exit %d, %v", r.code(), r.err)
	}
	if r := runClient(t, "fn", "rm", "hello"); r.code() != exitNotFound {
		t.Errorf("rm twice: exit %d, %v", r.code(), r.err)
	}
}

func TestReadPayload(t *testing.T) {
	file := filepath.Join(t.TempDir(), "p.json")
	if err := os.WriteFile(file, []byte(`{"a": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		data, stdin, want string
		err               bool
	}{
		{data: `{"a":1}`, want: `{"a":1}`},
		{data: `"text"`, want: `"text"`},
		{data: `text`, err: true},
		{data: "@" + file, want: `{"a": 1}`},
		{data: "@-", stdin: `[true]`, want: `[true]`},
		{data: "@-", stdin: ``, err: true},
		{data: "@/nonexistent.json", err: true},
	} {
		got, err := readPayload(tc.data, strings.NewReader(tc.stdin))
		if (err != nil) != tc.err || string(got) != tc.want {
			t.Errorf("readPayload(%q, %q) = %s, %v", tc.data, tc.stdin, got, err)
		}
	}
}

// TestLogsFollow: logs --follow streams an invocation that has not run yet
// until it finishes, and its exit code says how it ended.
func TestLogsFollow(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options{Auth: true})
	t.Setenv("PICLOUD_URL", p.URL)
	t.Setenv("PICLOUD_API_KEY", p.Key(t, "admin"))
	ok(t, "fn", "deploy", "hello", functionsDir+"hello.lua")
	ok(t, "fn", "deploy", "broken", functionsDir+"error.lua")

	tests := []struct {
		function string
		code     int
		log      string
	}{
		{"hello", exitOK, "INFO  greeting Ada"},
		{"broken", exitRunFail, ""},
	}
	for _, tt := range tests {
		t.Run(tt.function, func(t *testing.T) {
			// It may finish before the stream opens: the stream then carries
			// its logs and final state at once (api tests cover the live path).
			id := strings.TrimSpace(ok(t, "invoke", tt.function, "--async", "--data", `{"name": "Ada"}`))
			r := runClient(t, "logs", "--follow", id)
			if r.code() != tt.code {
				t.Fatalf("exit %d (%v), want %d\nstderr: %s", r.code(), r.err, tt.code, r.stderr)
			}
			if !strings.Contains(r.stdout, tt.log) {
				t.Errorf("stdout %q, want it to contain %q", r.stdout, tt.log)
			}
			if !regexp.MustCompile(`invocation ` + id + `: (succeeded|failed)`).MatchString(r.stderr) {
				t.Errorf("stderr %q does not show the final step", r.stderr)
			}
			json := runClient(t, "logs", "-f", "-o", "json", id)
			if tt.log != "" && !strings.Contains(json.stdout, `"message":"greeting Ada"`) {
				t.Errorf("-o json printed %q", json.stdout)
			}
		})
	}
	if r := runClient(t, "logs", "--follow", "999999"); r.code() != exitNotFound {
		t.Errorf("following a missing invocation: exit %d, want %d", r.code(), exitNotFound)
	}
}
