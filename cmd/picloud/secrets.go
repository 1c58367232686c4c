package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/alecthomas/kong"

	picloud "github.com/picloud/picloud/sdk/go"
)

type secretsCmd struct {
	Set secretsSetCmd `cmd:"" help:"Set a function's secret; the value is read from standard input, never from a flag."`
	Ls  secretsLsCmd  `cmd:"" aliases:"list" help:"List the names of a function's secrets (values are never returned)."`
	Rm  secretsRmCmd  `cmd:"" aliases:"delete" help:"Delete a function's secret."`
}

type secretsSetCmd struct {
	clientFlags
	Function string `arg:"" help:"Function name."`
	Name     string `arg:"" help:"Secret name, secrets.NAME in the script."`
}

func (c *secretsSetCmd) Run(ctx context.Context, kctx *kong.Context) error {
	client, err := c.client()
	if err != nil {
		return err
	}
	// From standard input, so that the value stays out of the shell
	// history and ps; one trailing newline (echo's, a file's) is not part
	// of it.
	raw, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
	if err != nil {
		return fmt.Errorf("read the value from standard input: %w", err)
	}
	value := strings.TrimSuffix(strings.TrimSuffix(string(raw), "\n"), "\r")
	if value == "" {
		return withExitCode(exitUsage, errors.New("no value on standard input: printf %s \"$VALUE\" | picloud secrets set FUNCTION NAME"))
	}
	if _, err := call(client.SetFunctionSecretWithResponse(ctx, c.Function, c.Name, picloud.SetFunctionSecretJSONRequestBody{Value: value})); err != nil {
		return err
	}
	fmt.Fprintf(kctx.Stdout, "set secret %s of %s\n", c.Name, c.Function)
	return nil
}

type secretsLsCmd struct {
	clientFlags
	Function string `arg:"" help:"Function name."`
}

func (c *secretsLsCmd) Run(ctx context.Context, kctx *kong.Context) error {
	client, err := c.client()
	if err != nil {
		return err
	}
	res, err := call(client.GetFunctionEnvWithResponse(ctx, c.Function))
	if err != nil {
		return err
	}
	if res.JSON200 == nil {
		return fmt.Errorf("unexpected answer %d without an env", res.StatusCode())
	}
	names := []string{}
	if res.JSON200.Secrets != nil {
		names = *res.JSON200.Secrets
	}
	if c.json() {
		raw, err := json.Marshal(map[string][]string{"secrets": names})
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		return printJSON(kctx.Stdout, raw)
	}
	for _, n := range names {
		fmt.Fprintln(kctx.Stdout, n)
	}
	return nil
}

type secretsRmCmd struct {
	clientFlags
	Function string `arg:"" help:"Function name."`
	Name     string `arg:"" help:"Secret name."`
}

func (c *secretsRmCmd) Run(ctx context.Context, kctx *kong.Context) error {
	client, err := c.client()
	if err != nil {
		return err
	}
	if _, err := call(client.DeleteFunctionSecretWithResponse(ctx, c.Function, c.Name)); err != nil {
		return err
	}
	fmt.Fprintf(kctx.Stdout, "deleted secret %s of %s\n", c.Name, c.Function)
	return nil
}
