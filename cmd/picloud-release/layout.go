package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// layout names the repository's modules. Published modules are tagged and
// released together; workspace-only modules (checks that live in a module
// of their own to keep their dependencies out of the others) are in go.work
// and never tagged.
type layout struct {
	published     []moduleDef
	workspaceOnly []string // directories, relative to the root
}

type moduleDef struct {
	dir  string // relative to the root, "." for the root module
	path string // the module path
}

// tag is the module's git tag for a version: vX.Y.Z at the root,
// DIR/vX.Y.Z for a module in a subdirectory, as the go command expects.
func (m moduleDef) tag(version string) string {
	if m.dir == "." {
		return version
	}
	return m.dir + "/" + version
}

func picloudLayout() layout {
	return layout{
		published: []moduleDef{
			{dir: ".", path: "github.com/picloud/picloud"},
			{dir: "picloudtest", path: "github.com/picloud/picloud/picloudtest"},
		},
		workspaceOnly: []string{"docs/deploy"},
	}
}

func (l layout) isPublished(path string) bool {
	return slices.ContainsFunc(l.published, func(m moduleDef) bool { return m.path == path })
}

// allDirs is every module directory, published first.
func (l layout) allDirs() []string {
	var dirs []string
	for _, m := range l.published {
		dirs = append(dirs, m.dir)
	}
	return append(dirs, l.workspaceOnly...)
}

// goMod is what `go mod edit -json` prints of a go.mod.
type goMod struct {
	Module    struct{ Path string }
	Go        string
	Toolchain string
	Require   []struct {
		Path     string
		Version  string
		Indirect bool
	}
	Replace []replace
}

// goWork is what `go work edit -json` prints of a go.work.
type goWork struct {
	Go        string
	Toolchain string
	Use       []struct{ DiskPath string }
	Replace   []replace
}

type replace struct {
	Old struct{ Path, Version string }
	New struct{ Path, Version string }
}

// goCmd runs the go command in dir and returns its standard output. The
// environment is the caller's with extra appended (later entries win).
func goCmd(ctx context.Context, dir string, extra []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), extra...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("go %s in %s: %w: %s", strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func readGoMod(ctx context.Context, root, dir string) (goMod, error) {
	var m goMod
	out, err := goCmd(ctx, filepath.Join(root, dir), nil, "mod", "edit", "-json")
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(out, &m); err != nil {
		return m, fmt.Errorf("%s/go.mod: %w", dir, err)
	}
	return m, nil
}

func readGoWork(ctx context.Context, root string) (goWork, error) {
	var w goWork
	root, err := filepath.Abs(root)
	if err != nil {
		return w, err
	}
	out, err := goCmd(ctx, root, []string{"GOWORK=" + filepath.Join(root, "go.work")}, "work", "edit", "-json")
	if err != nil {
		return w, err
	}
	if err := json.Unmarshal(out, &w); err != nil {
		return w, fmt.Errorf("go.work: %w", err)
	}
	return w, nil
}

// findModules lists the directories under root that hold a go.mod, as the
// go command would see them: hidden directories, testdata, vendor and
// node_modules are skipped, as they are no part of any module.
func findModules(root string) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") ||
				name == "testdata" || name == "vendor" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Name() == "go.mod" {
			rel, err := filepath.Rel(root, filepath.Dir(path))
			if err != nil {
				return err
			}
			dirs = append(dirs, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("find modules: %w", err)
	}
	slices.Sort(dirs)
	return dirs, nil
}

// releaseVersion is the version the published modules require of each
// other: the one being released. It is an error when they disagree, or
// when no module requires another (then there is nothing to read it from).
func releaseVersion(ctx context.Context, root string, l layout) (string, error) {
	versions := map[string][]string{}
	for _, dir := range l.allDirs() {
		m, err := readGoMod(ctx, root, dir)
		if err != nil {
			return "", err
		}
		for _, r := range m.Require {
			if l.isPublished(r.Path) {
				versions[r.Version] = append(versions[r.Version], dir+" requires "+r.Path+" "+r.Version)
			}
		}
	}
	switch len(versions) {
	case 0:
		return "", errors.New("no module requires another of the repository's modules: no release version to read")
	case 1:
		for v := range versions {
			return v, nil
		}
	}
	var all []string
	for _, lines := range versions {
		all = append(all, lines...)
	}
	slices.Sort(all)
	return "", fmt.Errorf("the modules require different versions of each other: %s", strings.Join(all, "; "))
}
