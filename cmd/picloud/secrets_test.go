package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/picloud/picloud/internal/platformtest"
)

// withStdin runs f with os.Stdin reading text.
func withStdin(t *testing.T, text string, f func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stdin")
	writeFile(t, path, text)
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	saved := os.Stdin
	os.Stdin = in
	defer func() { os.Stdin = saved }()
	f()
}

// TestSecretsCommands: secrets set takes the value from standard input
// (without its trailing newline) and the script sees it; ls lists names;
// rm deletes.
func TestSecretsCommands(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options{Auth: true})
	t.Setenv("PICLOUD_URL", p.URL)
	t.Setenv("PICLOUD_API_KEY", p.AdminKey)
	src := filepath.Join(t.TempDir(), "s.lua")
	writeFile(t, src, `function handle(req) return crypto.sha256(secrets.TOKEN or "") end`)
	ok(t, "fn", "deploy", "s", src)

	withStdin(t, "hunter22\n", func() {
		if out := ok(t, "secrets", "set", "s", "TOKEN"); out != "set secret TOKEN of s\n" {
			t.Errorf("set printed %q", out)
		}
	})
	// printf hunter22 | sha256sum: the newline is not part of the value.
	if out := ok(t, "invoke", "s"); out != "20d2fe5e369db54ec7090639a9dc30ec4d608604936239d39e2de07fda09eb0b\n" {
		t.Errorf("invoke: %q", out)
	}
	if out := ok(t, "secrets", "ls", "s"); out != "TOKEN\n" {
		t.Errorf("ls printed %q", out)
	}
	withStdin(t, "", func() {
		if r := runClient(t, "secrets", "set", "s", "TOKEN"); r.code() != exitUsage {
			t.Errorf("set without a value: exit %d %v", r.code(), r.err)
		}
	})
	ok(t, "secrets", "rm", "s", "TOKEN")
	if out := ok(t, "secrets", "ls", "s"); out != "" {
		t.Errorf("ls after rm printed %q", out)
	}
}
