// Command picloud-release checks the release configuration, builds release
// archives and prepares a release (docs/releasing.md). It is a tool of the
// repository, never part of the picloud binary.
//
//	go run ./cmd/picloud-release check                  # CI: the modules agree
//	go run ./cmd/picloud-release snapshot --out dist    # linux/amd64 and arm64 archives, checksums
//	go run ./cmd/picloud-release prepare v0.2.0         # move requires, go.work and CHANGELOG to v0.2.0
//	go run ./cmd/picloud-release tidy                   # go mod tidy in every module, offline of unpublished versions
//	go run ./cmd/picloud-release consumer               # the modules as a user gets them, before the tags exist
//
// Every subcommand works on the repository at --root (by default the
// current directory) and needs only the go command and git.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"
)

type cli struct {
	Root string `default:"." type:"existingdir" help:"The repository's root."`

	Check    checkCmd    `cmd:"" help:"Validate the release configuration: modules, requires, go directives, licences, CHANGELOG."`
	Snapshot snapshotCmd `cmd:"" help:"Build the release archives of cmd/picloud and their checksums."`
	Prepare  prepareCmd  `cmd:"" help:"Set the release version in every module's requires, go.work and CHANGELOG.md."`
	Tidy     tidyCmd     `cmd:"" help:"Run go mod tidy in every module, with the repository's own modules read from here."`
	Consumer consumerCmd `cmd:"" help:"Publish the committed modules to a temporary file proxy and use them from a module outside the repository."`
}

func main() {
	var c cli
	kctx := kong.Parse(&c,
		kong.Name("picloud-release"),
		kong.Description("PiCloud's release tool (docs/releasing.md)."),
		kong.UsageOnError(),
	)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	kctx.BindTo(ctx, (*context.Context)(nil))
	if err := kctx.Run(&c); err != nil {
		fmt.Fprintln(os.Stderr, "picloud-release:", err)
		os.Exit(1)
	}
}
