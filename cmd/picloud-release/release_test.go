package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const repoRoot = "../.."

// TestCheckRepo: the repository's own release configuration is valid, and
// the workspace does not change the root module's dependencies.
func TestCheckRepo(t *testing.T) {
	problems, version, err := check(context.Background(), repoRoot, picloudLayout(), "", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	if !semverRE.MatchString(version) {
		t.Errorf("release version %q", version)
	}
}

// fixture writes a small repository with the layout of PiCloud's modules,
// valid as written; edit changes it before the check.
func fixture(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	licence := "                                 Apache License\n                           Version 2.0, January 2004\n"
	files := map[string]string{
		"go.mod":              "module github.com/picloud/picloud\n\ngo 1.26.0\n",
		"picloudtest/go.mod":  "module github.com/picloud/picloud/picloudtest\n\ngo 1.26.0\n\nrequire github.com/picloud/picloud v0.1.0\n",
		"docs/deploy/go.mod":  "module github.com/picloud/picloud/docs/deploy\n\ngo 1.26.0\n",
		"go.work":             "go 1.26.0\n\nuse (\n\t.\n\t./docs/deploy\n\t./picloudtest\n)\n\nreplace github.com/picloud/picloud v0.1.0 => ./\n",
		"LICENSE":             licence,
		"picloudtest/LICENSE": licence,
		"CHANGELOG.md":        "# Changelog\n\n## [Unreleased]\n\n### Added\n\n- Everything.\n\n[Unreleased]: https://github.com/picloud/picloud/commits/main\n",
		// Not modules: skipped as the go command skips them.
		"testdata/x/go.mod":       "module x\n",
		"sdk/node_modules/go.mod": "module y\n",
	}
	for name, content := range files {
		write(t, filepath.Join(root, name), content)
	}
	return root
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestCheck(t *testing.T) {
	replaceIn := func(file, old, new string) func(t *testing.T, root string) {
		return func(t *testing.T, root string) {
			path := filepath.Join(root, file)
			s := read(t, path)
			if !strings.Contains(s, old) {
				t.Fatalf("%s has no %q", file, old)
			}
			write(t, path, strings.Replace(s, old, new, 1))
		}
	}
	tests := []struct {
		name    string
		edit    func(t *testing.T, root string)
		version string
		want    string // a problem that must be reported; "" for none
	}{
		{name: "valid"},
		{name: "releasing the required version", version: "v0.1.0"},
		{name: "changelog section of the version", edit: replaceIn("CHANGELOG.md", "## [Unreleased]", "## [0.1.0] - 2026-12-07")},
		{
			name: "replace in a go.mod",
			edit: func(t *testing.T, root string) {
				write(t, filepath.Join(root, "picloudtest/go.mod"), read(t, filepath.Join(root, "picloudtest/go.mod"))+"\nreplace github.com/picloud/picloud => ../\n")
			},
			want: "picloudtest/go.mod replaces github.com/picloud/picloud",
		},
		{
			name: "modules require different versions",
			edit: func(t *testing.T, root string) {
				write(t, filepath.Join(root, "docs/deploy/go.mod"), "module github.com/picloud/picloud/docs/deploy\n\ngo 1.26.0\n\nrequire github.com/picloud/picloud/picloudtest v0.0.9\n")
			},
			want: "require different versions",
		},
		{name: "go.work replace at another version", edit: replaceIn("go.work", "picloud v0.1.0 =>", "picloud v0.0.9 =>"), want: "go.work replaces github.com/picloud/picloud v0.0.9, want the release version v0.1.0"},
		{name: "go.work replace elsewhere", edit: replaceIn("go.work", "=> ./", "=> ../other"), want: "want ./."},
		{name: "go.work replaces a stranger", edit: replaceIn("go.work", "replace github.com/picloud/picloud v0.1.0", "replace example.com/x v1.0.0"), want: "not one of the repository's modules"},
		{name: "go directives disagree", edit: replaceIn("docs/deploy/go.mod", "go 1.26.0", "go 1.25.0"), want: "go and toolchain directives disagree: 1.25.0 in docs/deploy/go.mod; 1.26.0 in go.mod, picloudtest/go.mod, go.work"},
		{name: "go.work's go directive", edit: replaceIn("go.work", "go 1.26.0", "go 1.26.8"), want: "1.26.8 in go.work"},
		{name: "toolchain in one module", edit: replaceIn("picloudtest/go.mod", "go 1.26.0\n", "go 1.26.0\n\ntoolchain go1.26.8\n"), want: "1.26.0 go1.26.8 in picloudtest/go.mod"},
		{name: "wrong module path", edit: replaceIn("picloudtest/go.mod", "picloud/picloudtest", "picloud/testing"), want: "declares module github.com/picloud/picloud/testing"},
		{name: "no LICENSE in a published module", edit: func(t *testing.T, root string) { os.Remove(filepath.Join(root, "picloudtest/LICENSE")) }, want: "picloudtest/LICENSE is missing"},
		{name: "LICENSE differs", edit: replaceIn("picloudtest/LICENSE", "2004", "2005"), want: "picloudtest/LICENSE differs from the root's"},
		{name: "not Apache", edit: func(t *testing.T, root string) { write(t, filepath.Join(root, "LICENSE"), "MIT License\n") }, want: "LICENSE is not the Apache License 2.0"},
		{name: "no changelog entry", edit: replaceIn("CHANGELOG.md", "## [Unreleased]", "## [0.0.9] - 2026-11-01"), want: "CHANGELOG.md has no section for v0.1.0 and none for Unreleased"},
		{name: "no changelog", edit: func(t *testing.T, root string) { os.Remove(filepath.Join(root, "CHANGELOG.md")) }, want: "CHANGELOG.md is missing"},
		{name: "unknown module", edit: func(t *testing.T, root string) {
			write(t, filepath.Join(root, "tools/go.mod"), "module github.com/picloud/picloud/tools\n\ngo 1.26.0\n")
		}, want: "tools/go.mod is a module the release tool does not know"},
		{name: "module missing from go.work", edit: replaceIn("go.work", "\t./docs/deploy\n", ""), want: "go.work uses [. picloudtest], the modules are [. docs/deploy picloudtest]"},
		{name: "no go.work", edit: func(t *testing.T, root string) { os.Remove(filepath.Join(root, "go.work")) }, want: "go.work is missing"},
		{name: "releasing another version", version: "v0.2.0", want: "releasing v0.2.0, but the modules require v0.1.0 of each other"},
		{name: "not a version", edit: func(t *testing.T, root string) {
			replaceIn("picloudtest/go.mod", "v0.1.0", "v0.1.0-rc.1")(t, root)
			replaceIn("go.work", "v0.1.0", "v0.1.0-rc.1")(t, root)
		}, version: "v0.1.0-rc.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fixture(t)
			if tt.edit != nil {
				tt.edit(t, root)
			}
			problems, _, err := check(context.Background(), root, picloudLayout(), tt.version, false)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				for _, p := range problems {
					t.Errorf("unexpected problem: %s", p)
				}
				return
			}
			for _, p := range problems {
				if strings.Contains(p, tt.want) {
					return
				}
			}
			t.Errorf("problems %q, want one containing %q", problems, tt.want)
		})
	}
}

// TestPrepare: prepare moves every require, go.work's replace and the
// CHANGELOG to the new version, check then accepts it, and a second run
// changes nothing.
func TestPrepare(t *testing.T) {
	ctx := context.Background()
	root := fixture(t)
	l := picloudLayout()

	// The first release keeps the required version and names the changelog's section.
	if err := prepare(ctx, root, l, "v0.1.0", "2026-12-07"); err != nil {
		t.Fatal(err)
	}
	changelog := read(t, filepath.Join(root, "CHANGELOG.md"))
	for _, want := range []string{
		"## [Unreleased]\n\n## [0.1.0] - 2026-12-07\n\n### Added\n\n- Everything.\n",
		"[Unreleased]: https://github.com/picloud/picloud/compare/v0.1.0...HEAD\n[0.1.0]: https://github.com/picloud/picloud/releases/tag/v0.1.0\n",
	} {
		if !strings.Contains(changelog, want) {
			t.Errorf("CHANGELOG.md after prepare v0.1.0:\n%s\nwant it to contain:\n%s", changelog, want)
		}
	}

	write(t, filepath.Join(root, "CHANGELOG.md"), strings.Replace(changelog, "## [Unreleased]\n", "## [Unreleased]\n\n### Fixed\n\n- A bug.\n", 1))
	if err := prepare(ctx, root, l, "v0.2.0", "2026-12-24"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(root, "picloudtest/go.mod")); !strings.Contains(got, "require github.com/picloud/picloud v0.2.0\n") {
		t.Errorf("picloudtest/go.mod after prepare:\n%s", got)
	}
	if got := read(t, filepath.Join(root, "go.work")); !strings.Contains(got, "replace github.com/picloud/picloud v0.2.0 => ./\n") || strings.Contains(got, "v0.1.0") {
		t.Errorf("go.work after prepare:\n%s", got)
	}
	changelog = read(t, filepath.Join(root, "CHANGELOG.md"))
	for _, want := range []string{
		"## [Unreleased]\n\n## [0.2.0] - 2026-12-24\n\n### Fixed\n\n- A bug.\n\n## [0.1.0] - 2026-12-07\n",
		"[Unreleased]: https://github.com/picloud/picloud/compare/v0.2.0...HEAD\n[0.2.0]: https://github.com/picloud/picloud/compare/v0.1.0...v0.2.0\n[0.1.0]: https://github.com/picloud/picloud/releases/tag/v0.1.0\n",
	} {
		if !strings.Contains(changelog, want) {
			t.Errorf("CHANGELOG.md after prepare v0.2.0:\n%s\nwant it to contain:\n%s", changelog, want)
		}
	}
	problems, version, err := check(ctx, root, l, "v0.2.0", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 || version != "v0.2.0" {
		t.Errorf("check after prepare: %q, version %s", problems, version)
	}

	before := snapshotFiles(t, root)
	if err := prepare(ctx, root, l, "v0.2.0", "2026-12-25"); err != nil {
		t.Fatal(err)
	}
	if after := snapshotFiles(t, root); after != before {
		t.Errorf("a second prepare v0.2.0 changed the files:\n%s\nwas:\n%s", after, before)
	}

	for _, bad := range []struct{ version, date string }{{"0.3.0", "2026-12-24"}, {"v0.3", "2026-12-24"}, {"v0.3.0", "24.12.2026"}} {
		if err := prepare(ctx, root, l, bad.version, bad.date); err == nil {
			t.Errorf("prepare %s %s succeeded", bad.version, bad.date)
		}
	}
}

func snapshotFiles(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	for _, name := range []string{"go.mod", "picloudtest/go.mod", "docs/deploy/go.mod", "go.work", "CHANGELOG.md"} {
		b.WriteString("== " + name + "\n" + read(t, filepath.Join(root, name)))
	}
	return b.String()
}

// TestSnapshot builds the release archive of the host's architecture from
// the repository (and linux/arm64 unless -short), and checks what a user
// downloads: the files, their modes and times, the checksums, a binary that
// reports the stamped version, and the same bytes from a second build.
func TestSnapshot(t *testing.T) {
	ctx := context.Background()
	arches := []string{"amd64"}
	if !testing.Short() {
		arches = append(arches, "arm64")
	}
	s := stamp{version: "v0.1.0-test.1", commit: "0123456789abcdef0123456789abcdef01234567-dirty", time: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	out := t.TempDir()
	start := time.Now()
	files, err := snapshot(ctx, repoRoot, out, s, arches)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("snapshot of %v in %s", arches, time.Since(start).Round(time.Millisecond))
	if len(files) != len(arches)+1 {
		t.Fatalf("wrote %v", files)
	}

	sums := read(t, filepath.Join(out, "checksums.txt"))
	lines := strings.Split(strings.TrimSuffix(sums, "\n"), "\n")
	if len(lines) != len(arches) {
		t.Fatalf("checksums.txt:\n%s", sums)
	}
	for i, arch := range arches {
		name := "picloud_0.1.0-test.1_linux_" + arch + ".tar.gz"
		data, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if want := hex.EncodeToString(sum[:]) + "  " + name; lines[i] != want {
			t.Errorf("checksums.txt line %d = %q, want %q", i, lines[i], want)
		}
		entries := untar(t, data)
		if got := strings.Join(entryNames(entries), " "); got != "picloud LICENSE README.md" {
			t.Errorf("%s holds %s", name, got)
		}
		for _, e := range entries {
			h := e.hdr
			wantMode := int64(0o644)
			if h.Name == "picloud" {
				wantMode = 0o755
			}
			if h.Mode != wantMode || !h.ModTime.Equal(s.time) || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
				t.Errorf("%s: %s has mode %o, time %s, owner %d:%d %q:%q", name, h.Name, h.Mode, h.ModTime, h.Uid, h.Gid, h.Uname, h.Gname)
			}
			if h.Name != "picloud" {
				if want := read(t, filepath.Join(repoRoot, h.Name)); string(e.data) != want {
					t.Errorf("%s: %s differs from the repository's", name, h.Name)
				}
			}
		}
		bin := entries[0].data
		if arch == "arm64" && !bytes.Contains(bin[:20], []byte{0xb7, 0x00}) { // ELF e_machine EM_AARCH64
			t.Errorf("%s: the binary is not an arm64 ELF: % x", name, bin[:20])
		}
		if arch == runtime.GOARCH && runtime.GOOS == "linux" {
			path := filepath.Join(t.TempDir(), "picloud")
			if err := os.WriteFile(path, bin, 0o755); err != nil {
				t.Fatal(err)
			}
			got, err := exec.Command(path, "version").Output()
			if err != nil {
				t.Fatalf("%s version: %v", path, err)
			}
			want := "picloud v0.1.0-test.1 (commit 0123456789ab-dirty, built 2026-12-07T12:00:00Z, " + runtime.Version() + " linux/" + arch + ")\n"
			if string(got) != want {
				t.Errorf("picloud version printed %q, want %q", got, want)
			}
		}
	}

	// Reproducible: the same sources and stamp give the same bytes.
	again := t.TempDir()
	if _, err := snapshot(ctx, repoRoot, again, s, arches[:1]); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(again, "checksums.txt")); got != lines[0]+"\n" {
		t.Errorf("a second build gave\n%s, the first\n%s", got, lines[0])
	}
}

type entry struct {
	hdr  *tar.Header
	data []byte
}

func untar(t *testing.T, data []byte) []entry {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if gz.Name != "" || !gz.ModTime.IsZero() {
		t.Errorf("gzip header has name %q, time %s", gz.Name, gz.ModTime)
	}
	tr := tar.NewReader(gz)
	var entries []entry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return entries
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, entry{h, b})
	}
}

func entryNames(entries []entry) []string {
	var names []string
	for _, e := range entries {
		names = append(names, e.hdr.Name)
	}
	return names
}

// TestStamp: without a version, a snapshot is the release version with
// -snapshot and the commit, unless HEAD is that release's tag; the build
// time is SOURCE_DATE_EPOCH when set.
func TestStamp(t *testing.T) {
	if err := exec.Command("git", "-C", repoRoot, "rev-parse", "HEAD").Run(); err != nil {
		t.Skip("not a git checkout:", err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1796644800")
	s, err := newStamp(context.Background(), repoRoot, picloudLayout(), "")
	if err != nil {
		t.Fatal(err)
	}
	release, err := releaseVersion(context.Background(), repoRoot, picloudLayout())
	if err != nil {
		t.Fatal(err)
	}
	rev := strings.TrimSuffix(s.commit, "-dirty")
	if len(rev) != 40 {
		t.Errorf("commit %q", s.commit)
	}
	if s.version != release && s.version != release+"-snapshot."+rev[:12] {
		t.Errorf("version %q, release %s, commit %s", s.version, release, s.commit)
	}
	if want := time.Unix(1796644800, 0).UTC(); !s.time.Equal(want) {
		t.Errorf("time %s, want %s", s.time, want)
	}
	if _, err := newStamp(context.Background(), repoRoot, picloudLayout(), "0.1"); err == nil {
		t.Error("version 0.1 accepted")
	}
}

// TestTidy: tidy works while the required version of the repository's own
// module exists nowhere (GOPROXY=off), keeps the require, and leaves no
// replace behind.
func TestTidy(t *testing.T) {
	t.Setenv("GOPROXY", "off")
	root := fixture(t)
	write(t, filepath.Join(root, "lib/lib.go"), "package lib\n\nconst Answer = 42\n")
	write(t, filepath.Join(root, "picloudtest/p.go"), "package picloudtest\n\nimport \"github.com/picloud/picloud/lib\"\n\nvar _ = lib.Answer\n")
	// An unused require that tidy must drop, so the test sees tidy ran.
	write(t, filepath.Join(root, "docs/deploy/go.mod"), "module github.com/picloud/picloud/docs/deploy\n\ngo 1.26.0\n\nrequire example.com/unused v1.0.0\n")
	l := picloudLayout()
	for _, dir := range l.allDirs() {
		if err := tidy(context.Background(), root, l, dir); err != nil {
			t.Fatalf("tidy %s: %v", dir, err)
		}
	}
	got := read(t, filepath.Join(root, "picloudtest/go.mod"))
	if !strings.Contains(got, "require github.com/picloud/picloud v0.1.0\n") || strings.Contains(got, "replace") {
		t.Errorf("picloudtest/go.mod after tidy:\n%s", got)
	}
	if got := read(t, filepath.Join(root, "docs/deploy/go.mod")); strings.Contains(got, "example.com/unused") {
		t.Errorf("docs/deploy/go.mod after tidy:\n%s", got)
	}
	problems, _, err := check(context.Background(), root, l, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Errorf("check after tidy: %q", problems)
	}
}

// TestConsumer: the committed modules, published as they are to a module
// proxy, work for a module outside the repository (the workspace is off):
// picloudtest's example compiles against them, and cmd/picloud installs
// with @version and reports it.
func TestConsumer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds picloudtest and picloud as a consumer")
	}
	if err := exec.Command("git", "-C", repoRoot, "rev-parse", "HEAD").Run(); err != nil {
		t.Skip("not a git checkout:", err)
	}
	ctx := context.Background()
	version, err := releaseVersion(ctx, repoRoot, picloudLayout())
	if err != nil {
		t.Fatal(err)
	}
	line, err := tryAsConsumer(ctx, repoRoot, picloudLayout(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(line, "picloud "+version+" (") {
		t.Errorf("picloud version printed %q, want version %s", line, version)
	}
}
