package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"
)

type snapshotCmd struct {
	Out     string   `default:"dist" help:"Directory to write the archives and checksums.txt to (created if missing)."`
	Arch    []string `default:"amd64,arm64" help:"Linux architectures to build."`
	Version string   `help:"Version to stamp (vX.Y.Z). By default the release version when HEAD is tagged with it and the tree is clean, else that version with -snapshot.COMMIT."`
}

func (c *snapshotCmd) Run(ctx context.Context, kctx *kong.Context, root *cli) error {
	start := time.Now()
	s, err := newStamp(ctx, root.Root, picloudLayout(), c.Version)
	if err != nil {
		return err
	}
	files, err := snapshot(ctx, root.Root, c.Out, s, c.Arch)
	if err != nil {
		return err
	}
	for _, f := range files {
		fmt.Fprintln(kctx.Stdout, f)
	}
	fmt.Fprintf(kctx.Stdout, "snapshot %s (commit %s) of %s in %s\n", s.version, s.commit, strings.Join(c.Arch, ", "), time.Since(start).Round(time.Millisecond))
	return nil
}

// stamp is what a release build writes into the binary.
type stamp struct {
	version string
	commit  string    // full revision, "-dirty" with uncommitted changes; "" without git
	time    time.Time // the build time: SOURCE_DATE_EPOCH, else the commit's time
}

const versionPkg = "github.com/picloud/picloud/internal/version"

// newStamp reads the commit and its time from git. The build time is the
// commit's, not the clock's, so the same commit builds the same archives
// byte for byte (SOURCE_DATE_EPOCH overrides it, as reproducible-builds.org
// defines).
func newStamp(ctx context.Context, root string, l layout, version string) (stamp, error) {
	var s stamp
	gitOut := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	s.time = time.Unix(0, 0).UTC()
	clean := false
	if rev, err := gitOut("rev-parse", "HEAD"); err == nil {
		s.commit = rev
		status, err := gitOut("status", "--porcelain", "--untracked-files=no")
		if err != nil {
			return s, fmt.Errorf("git status: %w", err)
		}
		clean = status == ""
		if !clean {
			s.commit += "-dirty"
		}
		if ct, err := gitOut("log", "-1", "--format=%ct"); err == nil {
			if sec, err := strconv.ParseInt(ct, 10, 64); err == nil {
				s.time = time.Unix(sec, 0).UTC()
			}
		}
	}
	if epoch := os.Getenv("SOURCE_DATE_EPOCH"); epoch != "" {
		sec, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil {
			return s, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", epoch, err)
		}
		s.time = time.Unix(sec, 0).UTC()
	}

	s.version = version
	if s.version == "" {
		release, err := releaseVersion(ctx, root, l)
		if err != nil {
			return s, err
		}
		s.version = release
		tags, _ := gitOut("tag", "--points-at", "HEAD")
		if !clean || !slices.Contains(strings.Fields(tags), release) {
			short := "unknown"
			if len(s.commit) >= 12 {
				short = s.commit[:12]
			}
			s.version = release + "-snapshot." + short
		}
	}
	if !semverRE.MatchString(s.version) {
		return s, fmt.Errorf("version %q is not vMAJOR.MINOR.PATCH[-PRERELEASE]", s.version)
	}
	return s, nil
}

// archiveName is GoReleaser's default, which users and install scripts
// know: the version without its "v".
func archiveName(version, arch string) string {
	return fmt.Sprintf("picloud_%s_linux_%s.tar.gz", strings.TrimPrefix(version, "v"), arch)
}

// snapshot builds cmd/picloud for each Linux architecture into out, one
// archive each (the binary, LICENSE, README.md), and writes checksums.txt
// in sha256sum's format. It returns the paths written.
func snapshot(ctx context.Context, root, out string, s stamp, arches []string) ([]string, error) {
	if len(arches) == 0 {
		return nil, fmt.Errorf("no architecture to build")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	build, err := os.MkdirTemp("", "picloud-release-")
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	defer os.RemoveAll(build)

	ldflags := strings.Join([]string{
		"-s", "-w", // no symbol table or DWARF, as the container image
		"-X", versionPkg + ".version=" + s.version,
		"-X", versionPkg + ".commit=" + s.commit,
		"-X", versionPkg + ".buildTime=" + s.time.Format(time.RFC3339),
	}, " ")
	var written, sums []string
	for _, arch := range arches {
		bin := filepath.Join(build, arch, "picloud")
		// GOWORK=off: the archive is built from the root module's go.mod
		// alone, as `go install` builds it for a user; -buildvcs=false
		// because the commit is stamped above, and so a build outside a
		// git checkout works the same.
		if _, err := goCmd(ctx, root, []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + arch, "GOWORK=off", "GOFLAGS=-buildvcs=false -mod=readonly"},
			"build", "-trimpath", "-ldflags", ldflags, "-o", bin, "./cmd/picloud"); err != nil {
			return nil, fmt.Errorf("build linux/%s: %w", arch, err)
		}
		name := archiveName(s.version, arch)
		data, err := tarGz(s.time, []archiveFile{
			{name: "picloud", path: bin, mode: 0o755},
			{name: "LICENSE", path: filepath.Join(root, "LICENSE"), mode: 0o644},
			{name: "README.md", path: filepath.Join(root, "README.md"), mode: 0o644},
		})
		if err != nil {
			return nil, fmt.Errorf("archive linux/%s: %w", arch, err)
		}
		path := filepath.Join(out, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
		sum := sha256.Sum256(data)
		sums = append(sums, hex.EncodeToString(sum[:])+"  "+name+"\n")
		written = append(written, path)
	}
	slices.SortFunc(sums, func(a, b string) int { return strings.Compare(a[66:], b[66:]) })
	path := filepath.Join(out, "checksums.txt")
	if err := os.WriteFile(path, []byte(strings.Join(sums, "")), 0o644); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return append(written, path), nil
}

type archiveFile struct {
	name string // in the archive
	path string // on disk
	mode int64
}

// tarGz writes files into a gzipped tar whose bytes depend only on the
// files' contents, modes and mtime: no owner, no user or group names, no
// access times, and a gzip header without name or time.
func tarGz(mtime time.Time, files []archiveFile) ([]byte, error) {
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(gz)
	for _, f := range files {
		if err := addFile(tw, f, mtime); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func addFile(tw *tar.Writer, f archiveFile, mtime time.Time) error {
	r, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer r.Close()
	info, err := r.Stat()
	if err != nil {
		return err
	}
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     f.name,
		Size:     info.Size(),
		Mode:     f.mode,
		ModTime:  mtime,
		Format:   tar.FormatUSTAR,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.Copy(tw, r)
	return err
}
