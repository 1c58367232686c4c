package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/internal/platformtest"
)

// TestDeployKeepsSettings: a plain redeploy keeps auth, http_allow,
// max_concurrency, the timeout and the env (it once reset them all), a
// flag changes only its option, and the output says what changed.
func TestDeployKeepsSettings(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options{Auth: true})
	t.Setenv("PICLOUD_URL", p.URL)
	t.Setenv("PICLOUD_API_KEY", p.AdminKey)
	file := filepath.Join(t.TempDir(), "f.lua")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(`function handle(req) return "`+body+`" end`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("one")
	ok(t, "fn", "deploy", "f", file, "--auth", "key", "--http-allow", "api.example.com", "--max-concurrency", "3", "--timeout", "5s")
	if err := p.Catalog.SetEnv(context.Background(), "f", "REGION", "eu", false); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name   string
		source string // written before the deploy when not empty
		args   []string
		out    string
		want   catalog.FunctionOptions
		ver    int
	}{
		{"plain redeploy keeps everything", "two", nil,
			"updated f version 2 at /fn/f\n  source: changed (version 2)\n",
			catalog.FunctionOptions{Auth: catalog.AuthKey, HTTPAllow: []string{"api.example.com"}, MaxConcurrency: 3, Timeout: 5 * time.Second}, 2},
		{"same file again", "", nil, "no changes to f (version 2 at /fn/f)\n",
			catalog.FunctionOptions{Auth: catalog.AuthKey, HTTPAllow: []string{"api.example.com"}, MaxConcurrency: 3, Timeout: 5 * time.Second}, 2},
		{"one flag changes one option", "", []string{"--auth", "public"}, "updated f version 2 at /fn/f\n  auth: key -> public\n",
			catalog.FunctionOptions{Auth: catalog.AuthPublic, HTTPAllow: []string{"api.example.com"}, MaxConcurrency: 3, Timeout: 5 * time.Second}, 2},
		{"dry run stores nothing", "three", []string{"--dry-run", "--expose-errors"},
			"would be updated f version 3 at /fn/f\n  source: changed (version 3)\n  expose_errors: false -> true\n",
			catalog.FunctionOptions{Auth: catalog.AuthPublic, HTTPAllow: []string{"api.example.com"}, MaxConcurrency: 3, Timeout: 5 * time.Second}, 2},
		{"reset", "", []string{"--reset", "max_concurrency,http_allow", "--expose-errors"},
			"updated f version 3 at /fn/f\n  source: changed (version 3)\n  max_concurrency: 3 -> default\n  http_allow: [\"api.example.com\"] -> []\n  expose_errors: false -> true\n",
			catalog.FunctionOptions{Auth: catalog.AuthPublic, HTTPAllow: []string{}, Timeout: 5 * time.Second, ExposeErrors: true}, 3},
	}
	for _, s := range steps {
		if s.source != "" {
			write(s.source)
		}
		out := ok(t, append([]string{"fn", "deploy", "f", file}, s.args...)...)
		if out != s.out {
			t.Errorf("%s: printed %q, want %q", s.name, out, s.out)
		}
		fn, err := p.Catalog.GetFunction(context.Background(), "f")
		if err != nil {
			t.Fatal(err)
		}
		got := fn.Options
		if fn.Version != s.ver || got.Auth != s.want.Auth || !slices.Equal(got.HTTPAllow, s.want.HTTPAllow) || got.MaxConcurrency != s.want.MaxConcurrency ||
			got.Timeout != s.want.Timeout || got.ExposeErrors != s.want.ExposeErrors {
			t.Errorf("%s: version %d options %+v, want %d %+v", s.name, fn.Version, got, s.ver, s.want)
		}
		env, err := p.Catalog.GetEnv(context.Background(), "f")
		if err != nil || env.Values["REGION"] != "eu" {
			t.Errorf("%s: env %+v %v", s.name, env, err)
		}
	}
}
