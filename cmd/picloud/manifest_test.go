package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/internal/platformtest"
	"github.com/picloud/picloud/queue"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// wantLines fails unless out has every line (trimmed) of want.
func wantLines(t *testing.T, what, out string, want ...string) {
	t.Helper()
	have := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		have[strings.TrimSpace(l)] = true
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("%s: no line %q in:\n%s", what, w, out)
		}
	}
}

func functionNames(t *testing.T, p *platformtest.Platform) []string {
	t.Helper()
	fns, err := p.Catalog.ListFunctions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, fn := range fns {
		names = append(names, fn.Name)
	}
	return names
}

// TestManifestEndToEnd walks a project's life against a live server:
// init, a dry run that changes nothing, apply, invoke, a change to the
// source, the env, auth and the schedules that apply reports field by
// field, pull and apply of the pulled folder (a round trip with nothing to
// change), secrets from the environment, and prune.
func TestManifestEndToEnd(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options{Auth: true})
	t.Setenv("PICLOUD_URL", p.URL)
	t.Setenv("PICLOUD_API_KEY", p.AdminKey)
	dir := filepath.Join(t.TempDir(), "proj")

	wantLines(t, "init", ok(t, "init", dir), "wrote "+filepath.Join(dir, "picloud.yaml")+" and "+filepath.Join(dir, "functions", "hello.lua"))
	if r := runClient(t, "init", dir); r.code() != exitUsage || !strings.Contains(r.err.Error(), "exists") {
		t.Errorf("init over a project: exit %d %v", r.code(), r.err)
	}

	out := ok(t, "apply", dir, "--dry-run")
	wantLines(t, "dry run", out, "+ hello: created", "timeout_ms: default -> 5000", `env GREETING: added ("Hello")`,
		"dry run (1 created, 0 changed, 0 unchanged, 0 deleted): nothing was changed")
	if names := functionNames(t, p); len(names) != 0 {
		t.Fatalf("a dry run created %v", names)
	}

	wantLines(t, "apply", ok(t, "apply", dir), "+ hello: created", "applied: 1 created, 0 changed, 0 unchanged, 0 deleted")
	if got := ok(t, "invoke", "hello", "-d", `{"name": "Ada"}`); got != "Hello, Ada!\n" {
		t.Errorf("invoke after apply: %q", got)
	}
	wantLines(t, "apply again", ok(t, "apply", dir), "= hello: unchanged", "applied: 0 created, 0 changed, 1 unchanged, 0 deleted")

	// Change the source, auth, env and add a schedule.
	manifestPath := filepath.Join(dir, "picloud.yaml")
	m := readFile(t, manifestPath)
	m = strings.Replace(m, "auth: public ", "auth: key ", 1)
	m = strings.Replace(m, "GREETING: Hello", "GREETING: Hi", 1)
	m = strings.Replace(m, "    # schedules:\n    #   nightly:\n    #     cron: \"0 3 * * *\"\n    #     timezone: Europe/Berlin\n    #     payload: {name: cron}\n",
		"    schedules:\n      nightly:\n        cron: \"0 3 * * *\"\n        timezone: Europe/Berlin\n        payload: {name: cron, n: 2}\n", 1)
	writeFile(t, manifestPath, m)
	src := filepath.Join(dir, "functions", "hello.lua")
	writeFile(t, src, strings.Replace(readFile(t, src), `.. "!"`, `.. "!!"`, 1))
	plan := decodeJSON[struct {
		DryRun    bool `json:"dry_run"`
		Applied   bool
		Counts    map[string]int
		Functions []struct {
			Name, State string
			Changes     []string
		}
	}](t, ok(t, "apply", dir, "--dry-run", "-o", "json"))
	if !plan.DryRun || plan.Applied || plan.Counts["changed"] != 1 || len(plan.Functions) != 1 || plan.Functions[0].State != "changed" ||
		!slices.Contains(plan.Functions[0].Changes, "auth: public -> key") {
		t.Errorf("-o json plan: %+v", plan)
	}
	out = ok(t, "apply", dir)
	wantLines(t, "apply a change", out, "~ hello: changed", "source: changed (version 2)", "auth: public -> key",
		`env GREETING: "Hello" -> "Hi"`, "schedule nightly: added (0 3 * * *, Europe/Berlin)",
		"applied: 0 created, 1 changed, 0 unchanged, 0 deleted")
	if got := ok(t, "invoke", "hello", "-d", `{"name": "Bo"}`); got != "Hi, Bo!!\n" {
		t.Errorf("invoke after the change: %q", got)
	}
	fn, err := p.Catalog.GetFunction(context.Background(), "hello")
	if err != nil || fn.Options.Auth != catalog.AuthKey || fn.Options.Timeout != 5*time.Second {
		t.Errorf("after apply: %+v %v", fn.Options, err)
	}

	// pull writes a folder that applies with nothing to change.
	pulled := filepath.Join(t.TempDir(), "pulled")
	ok(t, "pull", pulled)
	if got := readFile(t, filepath.Join(pulled, "functions", "hello.lua")); got != readFile(t, src) {
		t.Errorf("pulled source differs:\n%s", got)
	}
	pm := readFile(t, filepath.Join(pulled, "picloud.yaml"))
	for _, want := range []string{"auth: key", "timeout: 5s", "GREETING: Hi", "cron: 0 3 * * *", "timezone: Europe/Berlin"} {
		if !strings.Contains(pm, want) {
			t.Errorf("pulled manifest has no %q:\n%s", want, pm)
		}
	}
	wantLines(t, "apply the pulled folder", ok(t, "apply", pulled), "= hello: unchanged", "applied: 0 created, 0 changed, 1 unchanged, 0 deleted")
	if r := runClient(t, "pull", pulled); r.code() != exitUsage {
		t.Errorf("pull over a manifest without --force: exit %d", r.code())
	}

	// A payload change, a schedule removed.
	writeFile(t, manifestPath, strings.Replace(readFile(t, manifestPath), "n: 2", "n: 3", 1))
	wantLines(t, "payload", ok(t, "apply", dir), `schedule nightly: changed (payload {"n":2,"name":"cron"} -> {"n":3,"name":"cron"})`)
	m = readFile(t, manifestPath)
	writeFile(t, manifestPath, m[:strings.Index(m, "    schedules:")])
	wantLines(t, "schedule removed", ok(t, "apply", dir), "schedule nightly: removed")

	// Secrets: names only, the value from the environment.
	writeFile(t, manifestPath, strings.Replace(readFile(t, manifestPath), "# secrets: [API_TOKEN]", "secrets: [API_TOKEN]", 1))
	r := runClient(t, "apply", dir)
	if r.code() != exitUsage || !strings.Contains(r.err.Error(), "hello.API_TOKEN") {
		t.Errorf("apply without the secret's value: exit %d %v", r.code(), r.err)
	}
	t.Setenv("API_TOKEN", "s3cret-value")
	wantLines(t, "secret", ok(t, "apply", dir), "secret API_TOKEN: set from $API_TOKEN")
	env, err := p.Catalog.GetEnv(context.Background(), "hello")
	if err != nil || len(env.Secrets) != 1 || env.Secrets[0] != "API_TOKEN" {
		t.Errorf("secrets after apply: %+v %v", env, err)
	}
	wantLines(t, "secret kept", ok(t, "apply", dir), "= hello: unchanged")

	// A function only on the server: kept, then pruned.
	ok(t, "fn", "deploy", "stray", functionsDir+"hello.lua")
	wantLines(t, "stray", ok(t, "apply", dir), "? stray: on the server, not in the manifest (kept; --prune deletes it)")
	wantLines(t, "prune dry run", ok(t, "apply", dir, "--prune", "--dry-run"), "- stray: deleted")
	if names := functionNames(t, p); len(names) != 2 {
		t.Fatalf("a dry run pruned: %v", names)
	}
	wantLines(t, "prune", ok(t, "apply", dir, "--prune"), "- stray: deleted", "applied: 0 created, 0 changed, 1 unchanged, 1 deleted")
	if names := functionNames(t, p); len(names) != 1 || names[0] != "hello" {
		t.Errorf("after prune: %v", names)
	}
}

// TestManifestErrors: a bad manifest is a one-line error naming its line,
// exit code 2, and nothing reaches the server.
func TestManifestErrors(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options{})
	t.Setenv("PICLOUD_URL", p.URL)
	tests := []struct {
		name, manifest, want string
	}{
		{"unknown key", "functions:\n  f:\n    file: f.lua\n    timout: 5s\n", "line 4: unknown key timout not found"},
		{"unknown top-level key", "functoins:\n  f:\n    file: f.lua\n", "line 1: unknown key functoins"},
		{"bad duration", "functions:\n  f:\n    file: f.lua\n    timeout: 5 seconds\n", `line 4: "5 seconds" is not a duration`},
		{"bad auth", "functions:\n  f:\n    file: f.lua\n    auth: private\n", "line 2: function f: auth must be public or key"},
		{"missing file", "functions:\n  f:\n    file: nope.lua\n", "function f: read its file"},
		{"no file", "functions:\n  f:\n    timeout: 5s\n", "line 2: function f: file: is missing"},
		{"bad name", "functions:\n  Hello:\n    file: f.lua\n", `line 2: "Hello" is not a function name`},
		{"bad cron", "functions:\n  f:\n    file: f.lua\n    schedules:\n      s:\n        cron: every day\n", "line 5: function f: schedule s: invalid schedule: cron"},
		{"bad timezone", "functions:\n  f:\n    file: f.lua\n    schedules:\n      s:\n        cron: '@hourly'\n        timezone: Mars/Olympus\n", "schedule s: invalid schedule: time zone"},
		{"not yaml", "functions: [\n", "line 1: did not find expected node content"},
		{"empty", "", "the manifest is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "picloud.yaml"), tt.manifest)
			writeFile(t, filepath.Join(dir, "f.lua"), `function handle(req) return 1 end`)
			r := runClient(t, "apply", dir)
			if r.code() != exitUsage || r.err == nil || !strings.Contains(r.err.Error(), tt.want) || strings.Contains(r.err.Error(), "\n") {
				t.Errorf("exit %d, error %v; want exit 2 and one line containing %q", r.code(), r.err, tt.want)
			}
		})
	}
	t.Run("source that does not compile", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "picloud.yaml"), "functions:\n  f:\n    file: f.lua\n")
		writeFile(t, filepath.Join(dir, "f.lua"), "function handle(req\n")
		r := runClient(t, "apply", dir)
		if r.code() != exitUsage || !strings.Contains(r.err.Error(), "plan f: 422") {
			t.Errorf("exit %d, error %v", r.code(), r.err)
		}
	})
	if names := functionNames(t, p); len(names) != 0 {
		t.Errorf("bad manifests created %v", names)
	}
}

// TestApplyWatch: apply --watch applies at once, again after a source file
// changes, and stops cleanly when its context ends.
func TestApplyWatch(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options{})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "picloud.yaml"), "functions:\n  w:\n    file: src/w.lua\n")
	writeFile(t, filepath.Join(dir, "src", "w.lua"), `function handle(req) return "one" end`)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var c cli
	var stdout, stderr syncBuffer
	kctx := parse(&c, []string{"apply", dir, "--watch", "--url", p.URL}, kong.Writers(&stdout, &stderr), kong.Exit(func(int) { t.Error("kong exited") }))
	done := make(chan error, 1)
	go func() { done <- run(ctx, kctx, slog.New(slog.DiscardHandler)) }()

	waitVersion := func(want int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			fn, err := p.Catalog.GetFunction(context.Background(), "w")
			if err == nil && fn.Version == want {
				return
			}
			if err != nil && !errors.Is(err, queue.ErrFunctionNotFound) {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("version %d not applied (have %d, %v)\nstdout:\n%s\nstderr:\n%s", want, fn.Version, err, stdout.String(), stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitVersion(1)
	// Wait for the watcher to be set up before changing the file.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "watching"); {
		if time.Now().After(deadline) {
			t.Fatalf("no 'watching' line:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	writeFile(t, filepath.Join(dir, "src", "w.lua"), `function handle(req) return "two" end`)
	waitVersion(2)
	t.Logf("re-applied %v after the save", time.Since(start))
	// A bad save is reported and the watch goes on.
	writeFile(t, filepath.Join(dir, "src", "w.lua"), `function handle(req`)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "does not compile"); {
		if time.Now().After(deadline) {
			t.Fatalf("a bad save was not reported:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	writeFile(t, filepath.Join(dir, "src", "w.lua"), `function handle(req) return "three" end`)
	waitVersion(3)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("watch ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch did not stop with its context")
	}
	if !strings.Contains(stdout.String(), "a file changed, applying") || !strings.Contains(stdout.String(), "source: changed (version 2)") {
		t.Errorf("watch output:\n%s", stdout.String())
	}
}

// TestManifestEveryField: a manifest using every field applies, pulls back
// with the same values, and the pulled folder applies with nothing to
// change; emptying the function's entry resets every option.
func TestManifestEveryField(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options{})
	t.Setenv("PICLOUD_URL", p.URL)
	t.Setenv("TOKEN", "a-secret-value")
	dir := t.TempDir()
	full := `functions:
  every:
    file: every.lua
    timeout: 1m30s
    auth: key
    http_allow: [api.example.com, "*.example.org:8443"]
    max_concurrency: 7
    max_attempts: 4
    retry_backoff: 0s
    max_instructions: 2000000
    log_retention: 48h
    expose_errors: true
    env:
      A: "1"
      B: two words
    secrets: [TOKEN]
    schedules:
      off:
        cron: "@every 1h"
        enabled: false
      tick:
        cron: "*/5 * * * *"
        timezone: America/New_York
        payload: {list: [1, 2], nested: {ok: true}, s: text}
`
	writeFile(t, filepath.Join(dir, "picloud.yaml"), full)
	writeFile(t, filepath.Join(dir, "every.lua"), `function handle(req) return "every" end`)
	ok(t, "apply", dir)
	fn, err := p.Catalog.GetFunction(context.Background(), "every")
	if err != nil {
		t.Fatal(err)
	}
	want := catalog.FunctionOptions{Timeout: 90 * time.Second, Auth: catalog.AuthKey, MaxConcurrency: 7, MaxAttempts: 4, RetryBackoff: 0,
		MaxInstructions: 2000000, LogRetention: 48 * time.Hour, ExposeErrors: true}
	got := fn.Options
	if strings.Join(got.HTTPAllow, ",") != "api.example.com,*.example.org:8443" {
		t.Errorf("http_allow %v", got.HTTPAllow)
	}
	got.HTTPAllow = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("options %+v, want %+v", got, want)
	}

	pulled := t.TempDir()
	ok(t, "pull", pulled, "--force")
	pm := readFile(t, filepath.Join(pulled, "picloud.yaml"))
	for _, line := range []string{"timeout: 1m30s", "retry_backoff: 0s", "log_retention: 48h", "max_attempts: 4", "expose_errors: true",
		"secrets: [TOKEN]", "enabled: false", "timezone: America/New_York", "B: two words"} {
		if !strings.Contains(pm, line) {
			t.Errorf("pulled manifest lacks %q:\n%s", line, pm)
		}
	}
	wantLines(t, "apply pulled", ok(t, "apply", pulled), "= every: unchanged")
	if strings.Contains(pm, "payload: {}") {
		t.Errorf("pulled an empty payload:\n%s", pm)
	}
	wantLines(t, "apply again", ok(t, "apply", dir), "= every: unchanged")

	writeFile(t, filepath.Join(dir, "picloud.yaml"), "functions:\n  every:\n    file: every.lua\n    secrets: [TOKEN]\n")
	out := ok(t, "apply", dir)
	wantLines(t, "reset", out, "timeout_ms: 90000 -> default", "max_attempts: 4 -> 1", "retry_backoff_ms: 0 -> 1000",
		"auth: key -> public", `http_allow: ["api.example.com","*.example.org:8443"] -> []`, "expose_errors: true -> false",
		"env A: removed", "schedule tick: removed")
	fn, err = p.Catalog.GetFunction(context.Background(), "every")
	if err != nil {
		t.Fatal(err)
	}
	if o := fn.Options; o.Timeout != 0 || o.Auth != catalog.AuthPublic || o.MaxConcurrency != 0 || o.MaxAttempts != 1 || o.RetryBackoff != time.Second ||
		o.MaxInstructions != 0 || o.LogRetention != 0 || o.ExposeErrors || len(o.HTTPAllow) != 0 {
		t.Errorf("after the reset: %+v", o)
	}
}
