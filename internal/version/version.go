// Package version says which build of PiCloud is running: the release
// version, the commit, when it was built, and the Go toolchain and platform.
//
// A release build sets the version, commit and build time at link time
// (cmd/picloud-release does, see docs/releasing.md):
//
//	go build -ldflags "-X github.com/picloud/picloud/internal/version.version=v0.1.0
//	  -X github.com/picloud/picloud/internal/version.commit=$(git rev-parse HEAD)
//	  -X github.com/picloud/picloud/internal/version.buildTime=2026-12-07T12:00:00Z" ./cmd/picloud
//
// Any other build falls back to what the Go toolchain records in the binary:
// the module version for `go install github.com/picloud/picloud/cmd/picloud@v0.1.0`,
// in a git clone the version and revision Go derives from git (a tag or a
// pseudo-version), and "devel" when nothing was stamped (-buildvcs=false).
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set by the linker with -X (the only way to set a value at link time is a
// package-level string variable); never written at run time.
var (
	version   string
	commit    string
	buildTime string
)

// Devel is the version of a build that has neither a release version nor a
// module version: `go build` or `go run` in a clone.
const Devel = "devel"

// Info describes one build. Unknown fields are empty.
type Info struct {
	Version   string // v0.1.0, or Devel
	Commit    string // the full revision, with "-dirty" when the tree had changes
	BuildTime string // RFC 3339, UTC
	GoVersion string // go1.26.8
	OS        string // linux
	Arch      string // amd64
}

// Get returns the running binary's build information.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return resolve(bi, version, commit, buildTime)
}

// resolve prefers the values set at link time and falls back to the build
// information the toolchain embedded (nil when there is none).
func resolve(bi *debug.BuildInfo, ldVersion, ldCommit, ldBuildTime string) Info {
	info := Info{
		Version:   ldVersion,
		Commit:    ldCommit,
		BuildTime: ldBuildTime,
		GoVersion: runtime.Version(),
		OS:        runtime.GOOS,
		Arch:      runtime.GOARCH,
	}
	if bi != nil {
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		var revision, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value
			case "GOOS":
				info.OS = s.Value
			case "GOARCH":
				info.Arch = s.Value
			}
		}
		if info.Commit == "" && revision != "" {
			info.Commit = revision
			if modified == "true" {
				info.Commit += "-dirty"
			}
		}
	}
	if info.Version == "" {
		info.Version = Devel
	}
	return info
}

// ShortCommit is the commit's first 12 hex digits, keeping "-dirty".
func (i Info) ShortCommit() string {
	rev, dirty := strings.CutSuffix(i.Commit, "-dirty")
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// String is the one line `picloud version` prints:
//
//	picloud v0.1.0 (commit 1a2b3c4d5e6f, built 2026-12-07T12:00:00Z, go1.26.8 linux/amd64)
func (i Info) String() string {
	orUnknown := func(s string) string {
		if s == "" {
			return "unknown"
		}
		return s
	}
	return fmt.Sprintf("picloud %s (commit %s, built %s, %s %s/%s)",
		i.Version, orUnknown(i.ShortCommit()), orUnknown(i.BuildTime), i.GoVersion, i.OS, i.Arch)
}
