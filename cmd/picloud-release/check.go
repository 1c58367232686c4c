package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
)

type checkCmd struct {
	Version string `help:"The version being released (vX.Y.Z); by default the one the modules require of each other."`
	NoDrift bool   `help:"Skip the check that the workspace builds the root module with the versions its own go.mod selects (runs go list twice)."`
}

func (c *checkCmd) Run(ctx context.Context, kctx *kong.Context, root *cli) error {
	problems, version, err := check(ctx, root.Root, picloudLayout(), c.Version, !c.NoDrift)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(kctx.Stderr, "check:", p)
		}
		return fmt.Errorf("%d problems in the release configuration", len(problems))
	}
	fmt.Fprintf(kctx.Stdout, "release configuration of %s: ok\n", version)
	return nil
}

// semverRE is a release version as Go modules spell it: vMAJOR.MINOR.PATCH
// with an optional pre-release, no build metadata (the go command refuses
// it in a require).
var semverRE = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)

// check validates the release configuration of the repository at root and
// returns what is wrong, one line each, and the release version. An error
// means the check itself could not run.
func check(ctx context.Context, root string, l layout, version string, drift bool) ([]string, string, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, "", err
	}
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	// Every module is known: a new one must be declared published (tagged,
	// licensed) or workspace-only, and be in the workspace.
	found, err := findModules(root)
	if err != nil {
		return nil, "", err
	}
	known := l.allDirs()
	for _, dir := range found {
		if !slices.Contains(known, dir) {
			add("%s/go.mod is a module the release tool does not know: add it to picloudLayout (published or workspace-only)", dir)
		}
	}
	for _, dir := range known {
		if !slices.Contains(found, dir) {
			add("%s/go.mod is missing", dir)
		}
	}
	if len(problems) > 0 {
		return problems, "", nil
	}

	required, err := releaseVersion(ctx, root, l)
	if err != nil {
		add("%v", err)
	}
	switch {
	case version == "":
		version = required
	case required != "" && version != required:
		add("releasing %s, but the modules require %s of each other (run picloud-release prepare %s)", version, required, version)
	}
	if version != "" && !semverRE.MatchString(version) {
		add("%q is not a release version (vMAJOR.MINOR.PATCH)", version)
	}

	// go.mod: the right module path, no replace, the same go directive.
	goVersions := map[string][]string{}
	for _, dir := range known {
		m, err := readGoMod(ctx, root, dir)
		if err != nil {
			return nil, "", err
		}
		for _, p := range l.published {
			if p.dir == dir && m.Module.Path != p.path {
				add("%s/go.mod declares module %s, want %s", dir, m.Module.Path, p.path)
			}
		}
		// Go ignores replace directives in dependencies: one here works in
		// this repository and breaks for every consumer.
		for _, r := range m.Replace {
			add("%s/go.mod replaces %s (consumers ignore replace directives; go.work ties the modules together)", dir, r.Old.Path)
		}
		goVersions[m.Go+" "+m.Toolchain] = append(goVersions[m.Go+" "+m.Toolchain], path.Join(dir, "go.mod"))
	}

	// go.work: uses exactly the modules, and replaces only the repository's
	// own modules at the release version, with their directory here.
	work, err := readGoWork(ctx, root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || !fileExists(filepath.Join(root, "go.work")) {
			add("go.work is missing")
		} else {
			return nil, "", err
		}
	} else {
		goVersions[work.Go+" "+work.Toolchain] = append(goVersions[work.Go+" "+work.Toolchain], "go.work")
		var used []string
		for _, u := range work.Use {
			used = append(used, filepath.ToSlash(filepath.Clean(u.DiskPath)))
		}
		slices.Sort(used)
		if !slices.Equal(used, found) {
			add("go.work uses %v, the modules are %v", used, found)
		}
		for _, r := range work.Replace {
			var dir string
			for _, p := range l.published {
				if p.path == r.Old.Path {
					dir = p.dir
				}
			}
			switch {
			case dir == "":
				add("go.work replaces %s, which is not one of the repository's modules", r.Old.Path)
			case r.Old.Version != version:
				add("go.work replaces %s %s, want the release version %s", r.Old.Path, r.Old.Version, version)
			case filepath.Clean(r.New.Path) != filepath.Clean(dir) || r.New.Version != "":
				add("go.work replaces %s %s with %s, want ./%s", r.Old.Path, r.Old.Version, r.New.Path, dir)
			}
		}
	}
	if len(goVersions) > 1 {
		var all []string
		for v, files := range goVersions {
			all = append(all, fmt.Sprintf("%s in %s", strings.TrimSpace(v), strings.Join(files, ", ")))
		}
		slices.Sort(all)
		add("go and toolchain directives disagree: %s", strings.Join(all, "; "))
	}

	// The licence travels with each published module (a module's zip holds
	// only its own directory) and is the same text everywhere.
	rootLicence, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	if err != nil {
		add("LICENSE is missing at the root")
	} else if !bytes.Contains(rootLicence, []byte("Apache License")) || !bytes.Contains(rootLicence, []byte("Version 2.0, January 2004")) {
		add("LICENSE is not the Apache License 2.0")
	}
	for _, p := range l.published {
		if p.dir == "." {
			continue
		}
		got, err := os.ReadFile(filepath.Join(root, p.dir, "LICENSE"))
		switch {
		case err != nil:
			add("%s/LICENSE is missing (a published module carries its licence)", p.dir)
		case rootLicence != nil && !bytes.Equal(got, rootLicence):
			add("%s/LICENSE differs from the root's", p.dir)
		}
	}

	// CHANGELOG.md has a section for the version, or one for Unreleased
	// changes that prepare turns into it.
	changelog, err := os.ReadFile(filepath.Join(root, "CHANGELOG.md"))
	if err != nil {
		add("CHANGELOG.md is missing")
	} else if version != "" && changelogSection(string(changelog), version) < 0 && changelogSection(string(changelog), "Unreleased") < 0 {
		add("CHANGELOG.md has no section for %s and none for Unreleased", version)
	}

	if drift && len(problems) == 0 {
		p, err := checkDrift(ctx, root)
		if err != nil {
			return nil, "", err
		}
		problems = append(problems, p...)
	}
	return problems, version, nil
}

// checkDrift compares the module versions the root module's packages and
// tests build with in the workspace with those of the root's own go.mod
// (what a user who requires it gets, and what a release archive is built
// with). The workspace selects the highest version any of its modules
// requires, so a dependency of picloudtest or docs/deploy could otherwise
// raise one of the root's in CI alone.
func checkDrift(ctx context.Context, root string) ([]string, error) {
	list := func(gowork string) ([]string, error) {
		out, err := goCmd(ctx, root, []string{"GOWORK=" + gowork, "GOFLAGS=-mod=readonly"},
			"list", "-deps", "-test", "-f", "{{with .Module}}{{.Path}} {{.Version}}{{end}}", "./...")
		if err != nil {
			return nil, err
		}
		lines := strings.Fields(strings.ReplaceAll(string(out), " ", "@"))
		slices.Sort(lines)
		return slices.Compact(lines), nil
	}
	alone, err := list("off")
	if err != nil {
		return nil, err
	}
	workspace, err := list(filepath.Join(root, "go.work"))
	if err != nil {
		return nil, err
	}
	var problems []string
	for _, m := range workspace {
		if !slices.Contains(alone, m) {
			problems = append(problems, fmt.Sprintf("the workspace builds the root module with %s, its go.mod alone selects otherwise: require that version in go.mod", m))
		}
	}
	return problems, nil
}

// changelogSection is the offset of the "## [name]" heading in a Keep a
// Changelog file, or -1. A version matches with or without its "v".
func changelogSection(changelog, name string) int {
	names := []string{name}
	if v, ok := strings.CutPrefix(name, "v"); ok {
		names = append(names, v)
	}
	for _, n := range names {
		re := regexp.MustCompile(`(?m)^## \[` + regexp.QuoteMeta(n) + `\]`)
		if loc := re.FindStringIndex(changelog); loc != nil {
			return loc[0]
		}
	}
	return -1
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
