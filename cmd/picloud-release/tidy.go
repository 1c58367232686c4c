package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/alecthomas/kong"
)

type tidyCmd struct{}

func (c *tidyCmd) Run(ctx context.Context, kctx *kong.Context, root *cli) error {
	l := picloudLayout()
	for _, dir := range l.allDirs() {
		if err := tidy(ctx, root.Root, l, dir); err != nil {
			return err
		}
		fmt.Fprintf(kctx.Stdout, "tidied %s\n", dir)
	}
	return nil
}

// tidy runs go mod tidy in one module. go mod tidy ignores go.work and
// would fetch the repository's own modules at the required version from
// the module proxy, which does not have a version before it is tagged and
// pushed; so each of them is replaced by its directory here for the
// duration, and the replace is dropped again whatever happens. The go.sum
// then holds no line for them, which only this repository's own builds
// outside the workspace would miss.
func tidy(ctx context.Context, root string, l layout, dir string) (err error) {
	m, err := readGoMod(ctx, root, dir)
	if err != nil {
		return err
	}
	moduleDir := filepath.Join(root, dir)
	var replaceArgs, dropArgs []string
	for _, r := range m.Require {
		for _, p := range l.published {
			if p.path != r.Path {
				continue
			}
			rel, err := filepath.Rel(moduleDir, filepath.Join(root, p.dir))
			if err != nil {
				return err
			}
			replaceArgs = append(replaceArgs, "-replace="+p.path+"="+filepath.ToSlash(rel)+"/")
			dropArgs = append(dropArgs, "-dropreplace="+p.path)
		}
	}
	if len(replaceArgs) > 0 {
		if _, err := goCmd(ctx, moduleDir, nil, append([]string{"mod", "edit"}, replaceArgs...)...); err != nil {
			return err
		}
		defer func() {
			if _, dropErr := goCmd(context.WithoutCancel(ctx), moduleDir, nil, append([]string{"mod", "edit"}, dropArgs...)...); dropErr != nil && err == nil {
				err = dropErr
			}
		}()
	}
	_, err = goCmd(ctx, moduleDir, []string{"GOWORK=off"}, "mod", "tidy")
	return err
}
