package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/picloud/picloud/internal/version"
)

// TestVersion: `picloud version` and `picloud --version` print the same
// line, with the build's version, toolchain and platform.
func TestVersion(t *testing.T) {
	want := version.Get().String() + "\n"
	for _, args := range [][]string{{"version"}, {"--version"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out bytes.Buffer
			exited := -1
			var c cli
			parser, err := kong.New(&c, append(kongOptions(), kong.Writers(&out, &out), kong.Exit(func(code int) { exited = code }))...)
			if err != nil {
				t.Fatal(err)
			}
			// --version prints and exits during Parse (here Exit returns,
			// and Parse goes on to miss a command); version runs.
			kctx, err := parser.Parse(args)
			switch {
			case exited > 0:
				t.Fatalf("exit code %d", exited)
			case exited == 0:
			case err != nil:
				t.Fatal(err)
			default:
				if err := kctx.Run(); err != nil {
					t.Fatal(err)
				}
			}
			if out.String() != want {
				t.Errorf("printed %q, want %q", out.String(), want)
			}
			if !strings.HasPrefix(want, "picloud "+version.Get().Version+" (") {
				t.Errorf("line %q does not start with the version", want)
			}
		})
	}
}
