package version

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	stamped := func(version string, settings ...debug.BuildSetting) *debug.BuildInfo {
		return &debug.BuildInfo{
			GoVersion: "go1.26.0",
			Main:      debug.Module{Path: "github.com/picloud/picloud", Version: version},
			Settings:  settings,
		}
	}
	tests := []struct {
		name                        string
		bi                          *debug.BuildInfo
		ldVersion, ldCommit, ldTime string
		want                        Info
	}{
		{
			name: "release build: link-time values win over build info",
			bi: stamped("v0.0.9", debug.BuildSetting{Key: "vcs.revision", Value: "ffff"},
				debug.BuildSetting{Key: "vcs.modified", Value: "true"}),
			ldVersion: "v0.1.0", ldCommit: rev, ldTime: "2026-12-07T12:00:00Z",
			want: Info{Version: "v0.1.0", Commit: rev, BuildTime: "2026-12-07T12:00:00Z", GoVersion: "go1.26.0"},
		},
		{
			name: "go install module@version",
			bi:   stamped("v0.1.0"),
			want: Info{Version: "v0.1.0", GoVersion: "go1.26.0"},
		},
		{
			name: "clone with a clean tree",
			bi:   stamped("(devel)", debug.BuildSetting{Key: "vcs.revision", Value: rev}, debug.BuildSetting{Key: "vcs.modified", Value: "false"}),
			want: Info{Version: Devel, Commit: rev, GoVersion: "go1.26.0"},
		},
		{
			name: "clone with changes",
			bi:   stamped("(devel)", debug.BuildSetting{Key: "vcs.revision", Value: rev}, debug.BuildSetting{Key: "vcs.modified", Value: "true"}),
			want: Info{Version: Devel, Commit: rev + "-dirty", GoVersion: "go1.26.0"},
		},
		{
			name: "cross-compiled: GOOS and GOARCH from the build settings",
			bi:   stamped("", debug.BuildSetting{Key: "GOOS", Value: "linux"}, debug.BuildSetting{Key: "GOARCH", Value: "arm64"}),
			want: Info{Version: Devel, GoVersion: "go1.26.0", OS: "linux", Arch: "arm64"},
		},
		{
			name: "no build info",
			want: Info{Version: Devel, GoVersion: runtime.Version()},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want.OS == "" {
				want.OS, want.Arch = runtime.GOOS, runtime.GOARCH
			}
			if got := resolve(tt.bi, tt.ldVersion, tt.ldCommit, tt.ldTime); got != want {
				t.Errorf("resolve() = %+v, want %+v", got, want)
			}
		})
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		info Info
		want string
	}{
		{
			Info{Version: "v0.1.0", Commit: "0123456789abcdef0123456789abcdef01234567-dirty", BuildTime: "2026-12-07T12:00:00Z", GoVersion: "go1.26.8", OS: "linux", Arch: "arm64"},
			"picloud v0.1.0 (commit 0123456789ab-dirty, built 2026-12-07T12:00:00Z, go1.26.8 linux/arm64)",
		},
		{
			Info{Version: Devel, GoVersion: "go1.26.8", OS: "linux", Arch: "amd64"},
			"picloud devel (commit unknown, built unknown, go1.26.8 linux/amd64)",
		},
	}
	for _, tt := range tests {
		if got := tt.info.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

// The test binary is built by the toolchain like any other: Get must at
// least report the running toolchain and platform.
func TestGet(t *testing.T) {
	got := Get()
	if got.Version == "" || got.GoVersion != runtime.Version() || got.OS != runtime.GOOS || got.Arch != runtime.GOARCH {
		t.Errorf("Get() = %+v", got)
	}
}
