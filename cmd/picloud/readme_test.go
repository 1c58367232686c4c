package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/picloud/picloud/internal/dbtest"
)

// readmeAddress is the address the README's quick start calls, dev's
// default; the test substitutes the address of the node it started.
const readmeAddress = "http://127.0.0.1:8080"

var (
	quickStartSection = regexp.MustCompile(`(?s)<!-- quickstart:begin -->(.*?)<!-- quickstart:end -->`)
	shellBlock        = regexp.MustCompile("(?ms)^```sh\n(.*?)^```\n")
)

// quickStartBlocks returns the shell blocks of the README's quick start, in
// order.
func quickStartBlocks(readme string) ([]string, error) {
	section := quickStartSection.FindStringSubmatch(readme)
	if section == nil {
		return nil, fmt.Errorf("no <!-- quickstart:begin --> ... <!-- quickstart:end --> section")
	}
	var blocks []string
	for _, m := range shellBlock.FindAllStringSubmatch(section[1], -1) {
		blocks = append(blocks, m[1])
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("no ```sh block in the quick start")
	}
	return blocks, nil
}

func TestQuickStartBlocks(t *testing.T) {
	blocks, err := quickStartBlocks("intro\n```sh\nnot this\n```\n<!-- quickstart:begin -->\ntext\n```sh\na\nb\n```\n\n```text\nc\n```\n```sh\nd\n```\n<!-- quickstart:end -->\n```sh\ne\n```\n")
	if err != nil || strings.Join(blocks, "|") != "a\nb\n|d\n" {
		t.Errorf("blocks %q, %v", blocks, err)
	}
	if _, err := quickStartBlocks("```sh\na\n```\n"); err == nil {
		t.Error("a README without the markers passed")
	}
}

// TestREADMEQuickStart runs the shell blocks of the README's quick start in
// order, in one bash with -euo pipefail from the repository's root, against
// a dev node on a fresh database (exported as DATABASE_URL, as a user
// exports the URL dev prints). Any command that fails fails the test.
func TestREADMEQuickStart(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skipf("no bash: %v", err)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		requireTool(t, "curl", err)
	}
	if _, err := exec.LookPath("psql"); err != nil {
		requireTool(t, "psql", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := quickStartBlocks(string(readme))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}

	databaseURL := dbtest.CreateDatabase(t)
	base, stderr, stop := startNode(t, "dev", "--database-url", databaseURL)

	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	script.WriteString(`trap 'echo "README quick start, block $block, line $LINENO: \"$BASH_COMMAND\" exited $?" >&2' ERR` + "\n")
	for i, block := range blocks {
		fmt.Fprintf(&script, "block=%d\n%s", i+1, strings.ReplaceAll(block, readmeAddress, base))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, "-c", script.String())
	cmd.Dir = root
	cmd.Env = append(environWithout("PICLOUD_URL", "PICLOUD_API_KEY", "DATABASE_URL"), "DATABASE_URL="+databaseURL)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the README's quick start failed: %v\n%s\n--- dev's stderr ---\n%s", err, out.String(), stderr.String())
	}
	t.Logf("quick start output:\n%s", out.String())

	// What the steps claim happened did happen.
	for _, want := range []string{"Hello, Ada!", "Hello, Grace!", "Hello, Alan!", "Hello, SQL!", "exit code 5", `"often"`, "Hello, Manifest!", `"every_minute"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the quick start's output lacks %q", want)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("dev stopped with %v", err)
	}
}

// requireTool skips a test that needs a missing tool, or fails it in CI
// (PICLOUD_TEST_REQUIRE=1), as the other tool-dependent tests do.
func requireTool(t *testing.T, name string, err error) {
	t.Helper()
	if os.Getenv("PICLOUD_TEST_REQUIRE") == "1" {
		t.Fatalf("%s is needed: %v (PICLOUD_TEST_REQUIRE=1)", name, err)
	}
	t.Skipf("%s is needed: %v", name, err)
}

// environWithout is the environment without the named variables.
func environWithout(names ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || name == n
		}
		if !drop {
			env = append(env, kv)
		}
	}
	return env
}
