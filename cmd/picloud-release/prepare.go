package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/alecthomas/kong"
)

type prepareCmd struct {
	Version string `arg:"" help:"The version to release, vX.Y.Z."`
	Date    string `help:"The release date for CHANGELOG.md (YYYY-MM-DD); today in UTC by default."`
}

func (c *prepareCmd) Run(ctx context.Context, kctx *kong.Context, root *cli) error {
	date := c.Date
	if date == "" {
		date = time.Now().UTC().Format(time.DateOnly)
	}
	l := picloudLayout()
	if err := prepare(ctx, root.Root, l, c.Version, date); err != nil {
		return err
	}
	fmt.Fprintf(kctx.Stdout, "prepared %s: review the diff, commit it, then tag the commit:\n", c.Version)
	for _, m := range l.published {
		fmt.Fprintf(kctx.Stdout, "  git tag -a %s -m 'release %s'\n", m.tag(c.Version), m.tag(c.Version))
	}
	return nil
}

// prepare makes version the release version: every module's require of
// the repository's published modules, go.work's replace of them, and the
// CHANGELOG's Unreleased section, which becomes the version's (with a new
// empty Unreleased above it). Running it again for the same version
// changes nothing.
func prepare(ctx context.Context, root string, l layout, version, date string) error {
	if !semverRE.MatchString(version) {
		return fmt.Errorf("%q is not a release version (vMAJOR.MINOR.PATCH)", version)
	}
	if _, err := time.Parse(time.DateOnly, date); err != nil {
		return fmt.Errorf("date %q: %w", date, err)
	}
	previous, err := releaseVersion(ctx, root, l)
	if err != nil {
		return err
	}

	for _, dir := range l.allDirs() {
		m, err := readGoMod(ctx, root, dir)
		if err != nil {
			return err
		}
		var args []string
		for _, r := range m.Require {
			if l.isPublished(r.Path) && r.Version != version {
				args = append(args, "-require="+r.Path+"@"+version)
			}
		}
		if len(args) > 0 {
			if _, err := goCmd(ctx, filepath.Join(root, dir), nil, append([]string{"mod", "edit"}, args...)...); err != nil {
				return err
			}
		}
	}

	work, err := readGoWork(ctx, root)
	if err != nil {
		return err
	}
	var args []string
	for _, r := range work.Replace {
		if l.isPublished(r.Old.Path) && r.Old.Version != version {
			args = append(args, "-dropreplace="+r.Old.Path+"@"+r.Old.Version,
				"-replace="+r.Old.Path+"@"+version+"="+r.New.Path)
		}
	}
	if len(args) > 0 {
		abs, err := filepath.Abs(root)
		if err != nil {
			return err
		}
		if _, err := goCmd(ctx, root, []string{"GOWORK=" + filepath.Join(abs, "go.work")}, append([]string{"work", "edit"}, args...)...); err != nil {
			return err
		}
	}

	path := filepath.Join(root, "CHANGELOG.md")
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	updated, err := changelogRelease(string(data), previous, version, date)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(updated), 0o644); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	return nil
}

// changelogRelease turns "## [Unreleased]" into "## [X.Y.Z] - date" under
// a new empty Unreleased section, and updates the link references at the
// bottom, Keep a Changelog's way:
//
//	[Unreleased]: https://github.com/picloud/picloud/compare/vX.Y.Z...HEAD
//	[X.Y.Z]: https://github.com/picloud/picloud/compare/vPREV...vX.Y.Z
//
// (releases/tag/vX.Y.Z for the first release). A changelog that already
// has the version's section is returned unchanged.
func changelogRelease(changelog, previous, version, date string) (string, error) {
	bare := strings.TrimPrefix(version, "v")
	if changelogSection(changelog, version) >= 0 {
		return changelog, nil
	}
	at := changelogSection(changelog, "Unreleased")
	if at < 0 {
		return "", fmt.Errorf("CHANGELOG.md has no \"## [Unreleased]\" section to release as %s", version)
	}
	end := at + strings.Index(changelog[at:], "\n")
	if end < at {
		end = len(changelog)
	}
	changelog = changelog[:at] + "## [Unreleased]\n\n## [" + bare + "] - " + date + changelog[end:]

	const repo = "https://github.com/picloud/picloud"
	linkRE := regexp.MustCompile(`(?mi)^\[unreleased\]: .*$`)
	link := "[Unreleased]: " + repo + "/compare/" + version + "...HEAD"
	this := "[" + bare + "]: " + repo + "/releases/tag/" + version
	if released := changelogSection(changelog[at+len("## [Unreleased]"):], previous); previous != "" && previous != version && released >= 0 {
		this = "[" + bare + "]: " + repo + "/compare/" + previous + "..." + version
	}
	if loc := linkRE.FindStringIndex(changelog); loc != nil {
		changelog = changelog[:loc[0]] + link + "\n" + this + changelog[loc[1]:]
	} else {
		changelog = strings.TrimRight(changelog, "\n") + "\n\n" + link + "\n" + this + "\n"
	}
	return changelog, nil
}
