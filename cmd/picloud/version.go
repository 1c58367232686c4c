package main

import (
	"fmt"

	"github.com/alecthomas/kong"

	"github.com/picloud/picloud/internal/version"
)

// versionCmd prints the same line as --version, for scripts and bug reports.
type versionCmd struct{}

func (c *versionCmd) Run(kctx *kong.Context) error {
	_, err := fmt.Fprintln(kctx.Stdout, version.Get())
	return err
}
