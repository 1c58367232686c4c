package main

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/alecthomas/kong"
)

type consumerCmd struct {
	Keep bool `help:"Keep the temporary proxy and consumer module, and print where they are."`
}

func (c *consumerCmd) Run(ctx context.Context, kctx *kong.Context, root *cli) error {
	dir, err := os.MkdirTemp("", "picloud-consumer-")
	if err != nil {
		return err
	}
	if c.Keep {
		fmt.Fprintln(kctx.Stdout, "work directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	line, err := tryAsConsumer(ctx, root.Root, picloudLayout(), dir)
	if err != nil {
		return err
	}
	fmt.Fprintln(kctx.Stdout, "a consumer module built picloudtest's example and installed", line)
	return nil
}

// tryAsConsumer publishes the committed files of every published module at
// the release version to a module proxy in work (a directory, as
// GOPROXY=file:// reads it), then, as a user outside this repository
// would: adds picloudtest to a new module, vets (so compiles) a copy of its
// example test, and installs cmd/picloud and runs `picloud version`, whose
// line it returns. It catches what the workspace hides from CI: a replace,
// a require of a version that does not exist, a package that imports a
// file the module does not hold.
func tryAsConsumer(ctx context.Context, root string, l layout, work string) (string, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	version, err := releaseVersion(ctx, root, l)
	if err != nil {
		return "", err
	}
	proxy := filepath.Join(work, "proxy")
	for _, m := range l.published {
		if err := publishToDir(ctx, root, l, m, version, proxy); err != nil {
			return "", fmt.Errorf("publish %s: %w", m.path, err)
		}
	}

	goEnv, err := goCmd(ctx, root, nil, "env", "GOPROXY", "GOMODCACHE")
	if err != nil {
		return "", err
	}
	upstream, modCache, _ := strings.Cut(strings.TrimSpace(string(goEnv)), "\n")
	env := []string{
		"GOWORK=off",
		// A module cache of its own: the versions published here must never
		// reach the shared one, where they would stand in for the real ones
		// (the go command never fetches a cached version again). The shared
		// cache's downloads serve as a proxy, so nothing is downloaded twice.
		"GOMODCACHE=" + filepath.Join(work, "modcache"),
		"GOPROXY=file://" + filepath.ToSlash(proxy) + ",file://" + filepath.ToSlash(filepath.Join(modCache, "cache", "download")) + "," + upstream,
		// -trimpath and CGO_ENABLED=0 as the release build: the build cache
		// then knows the dependencies by module and version, not by their
		// directory in this private module cache, and has them compiled.
		"GOFLAGS=-mod=mod -buildvcs=false -modcacherw -trimpath",
		"CGO_ENABLED=0",
		// The versions exist only here, so the checksum database has
		// never heard of them.
		"GONOSUMDB=github.com/picloud",
		"GOBIN=" + filepath.Join(work, "bin"),
	}
	consumer := filepath.Join(work, "consumer")
	example := filepath.Join(root, "picloudtest", "example")
	if err := os.CopyFS(consumer, os.DirFS(example)); err != nil {
		return "", err
	}
	m, err := readGoMod(ctx, root, ".")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(consumer, "go.mod"), []byte("module example.com/consumer\n\ngo "+m.Go+"\n"), 0o644); err != nil {
		return "", err
	}
	steps := [][]string{
		{"get", "github.com/picloud/picloud/picloudtest@" + version},
		{"mod", "tidy"},
		{"vet", "./..."},
		{"install", "github.com/picloud/picloud/cmd/picloud@" + version},
	}
	for _, args := range steps {
		if _, err := goCmd(ctx, consumer, env, args...); err != nil {
			return "", fmt.Errorf("as a consumer: %w", err)
		}
	}
	out, err := exec.CommandContext(ctx, filepath.Join(work, "bin", "picloud"), "version").Output()
	if err != nil {
		return "", fmt.Errorf("picloud version: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// publishToDir writes module m at version into proxy in the layout of the
// module proxy protocol: @v/list, .info, .mod and a zip of the module's
// committed files (git ls-files), without those of nested modules.
func publishToDir(ctx context.Context, root string, l layout, m moduleDef, version, proxy string) error {
	cmd := exec.CommandContext(ctx, "git", "ls-files", "-z", "--", m.dir)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("git ls-files: %w", err)
	}
	dir := filepath.Join(proxy, filepath.FromSlash(m.path), "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, version+".zip"))
	if err != nil {
		return err
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	prefix := m.path + "@" + version + "/"
	for _, file := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if file == "" || nestedIn(l, m, file) {
			continue
		}
		rel := strings.TrimPrefix(file, strings.TrimPrefix(m.dir+"/", "./"))
		info, err := os.Lstat(filepath.Join(root, file))
		if err != nil || !info.Mode().IsRegular() {
			continue // deleted in the work tree, or a symlink (modules hold neither)
		}
		if err := addZipFile(zw, prefix+rel, filepath.Join(root, file)); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	gomod, err := os.ReadFile(filepath.Join(root, m.dir, "go.mod"))
	if err != nil {
		return err
	}
	info, err := json.Marshal(map[string]string{"Version": version, "Time": time.Now().UTC().Format(time.RFC3339)})
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{version + ".mod": gomod, version + ".info": info, "list": []byte(version + "\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return f.Close()
}

// nestedIn reports whether file (relative to the root) belongs to another
// module inside m's directory.
func nestedIn(l layout, m moduleDef, file string) bool {
	for _, dir := range l.allDirs() {
		if dir == m.dir {
			continue
		}
		if m.dir == "." || strings.HasPrefix(dir, m.dir+"/") {
			if strings.HasPrefix(file, dir+"/") {
				return true
			}
		}
	}
	return path.Base(file) == "go.work" || path.Base(file) == "go.work.sum"
}

func addZipFile(zw *zip.Writer, name, file string) error {
	r, err := os.Open(file)
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := zw.Create(name)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, r)
	return err
}
