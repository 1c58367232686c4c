package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/alecthomas/kong"

	picloud "github.com/picloud/picloud/sdk/go"
)

type fnDeployCmd struct {
	clientFlags
	Name string `arg:"" help:"Function name: a lower-case letter, then up to 62 lower-case letters, digits, '-' or '_'."`
	File string `arg:"" type:"existingfile" help:"Lua source file defining a global function handle(req)."`

	// Pointers: a flag not given is not sent, and the function keeps what
	// it has (PATCH); a new function gets the server's default.
	Timeout         *time.Duration `placeholder:"DURATION" help:"Wall-clock limit of one attempt, e.g. 5s (server default 10s)."`
	MaxAttempts     *int64         `placeholder:"N" help:"Attempts of an asynchronous invocation before it fails (default 1)."`
	MaxConcurrency  *int64         `placeholder:"N" help:"Invocations that may run at once across all workers (default unlimited)."`
	RetryBackoff    *time.Duration `placeholder:"DURATION" help:"Delay before the second attempt, doubling after (default 1s)."`
	MaxInstructions *int64         `placeholder:"N" help:"Lua VM instruction budget of one attempt (server default 40 million)."`
	HTTPAllow       []string       `name:"http-allow" placeholder:"HOST" help:"Hosts the script may reach with http.request (host, *.domain, optionally :port); repeat the flag or separate with commas. Replaces the list."`
	Auth            *string        `enum:"public,key" placeholder:"public|key" help:"Who may call /fn/NAME: anyone (public, the default) or only callers with an API key (key)."`
	ExposeErrors    *bool          `negatable:"" help:"Show the error text of a failed invocation to /fn callers without a key (--no-expose-errors hides it again, the default)."`
	Reset           []string       `placeholder:"OPTION" enum:"timeout_ms,max_attempts,max_concurrency,retry_backoff_ms,max_instructions,log_retention_hours,auth,http_allow,expose_errors" help:"Put an option back to its default: timeout_ms, max_attempts, max_concurrency, retry_backoff_ms, max_instructions, log_retention_hours, auth, http_allow or expose_errors; repeat or separate with commas."`
	DryRun          bool           `help:"Show what would change without deploying."`
}

func (c *fnDeployCmd) Run(ctx context.Context, kctx *kong.Context) error {
	client, err := c.client()
	if err != nil {
		return err
	}
	source, err := os.ReadFile(c.File)
	if err != nil {
		return fmt.Errorf("read the source: %w", err)
	}
	body := picloud.PatchFunctionJSONRequestBody{
		Source:          picloud.Ptr(string(source)),
		TimeoutMs:       milliseconds(c.Timeout),
		MaxAttempts:     c.MaxAttempts,
		MaxConcurrency:  c.MaxConcurrency,
		RetryBackoffMs:  milliseconds(c.RetryBackoff),
		MaxInstructions: c.MaxInstructions,
		ExposeErrors:    c.ExposeErrors,
	}
	if len(c.HTTPAllow) > 0 {
		body.HttpAllow = &c.HTTPAllow
	}
	if c.Auth != nil {
		body.Auth = picloud.Ptr(picloud.PatchFunctionInputBodyAuth(*c.Auth))
	}
	if len(c.Reset) > 0 {
		reset := make([]picloud.PatchFunctionInputBodyReset, len(c.Reset))
		for i, r := range c.Reset {
			reset[i] = picloud.PatchFunctionInputBodyReset(r)
		}
		body.Reset = &reset
	}
	var params picloud.PatchFunctionParams
	if c.DryRun {
		params.DryRun = picloud.Ptr(true)
	}
	res, err := call(client.PatchFunctionWithResponse(ctx, c.Name, &params, body))
	if err != nil {
		return err
	}
	if c.json() {
		return printJSON(kctx.Stdout, res.Body)
	}
	fn := res.JSON200
	if res.JSON201 != nil {
		fn = res.JSON201
	}
	if fn == nil {
		return fmt.Errorf("unexpected answer %d without a function", res.StatusCode())
	}
	printDeployed(kctx.Stdout, *fn, c.DryRun)
	return nil
}

// printDeployed says what a deploy did: created, what changed field by
// field, or nothing.
func printDeployed(w io.Writer, fn picloud.PatchFunctionBody, dryRun bool) {
	would := ""
	if dryRun {
		would = "would be "
	}
	var changes []picloud.FunctionChange
	if fn.Changes != nil {
		changes = *fn.Changes
	}
	switch {
	case fn.Created:
		fmt.Fprintf(w, "%screated %s version %d at %s\n", would, fn.Name, fn.Version, fn.Url)
		return
	case len(changes) == 0:
		fmt.Fprintf(w, "no changes to %s (version %d at %s)\n", fn.Name, fn.Version, fn.Url)
		return
	}
	fmt.Fprintf(w, "%supdated %s version %d at %s\n", would, fn.Name, fn.Version, fn.Url)
	for _, ch := range changes {
		fmt.Fprintf(w, "  %s\n", describeChange(ch))
	}
}

// describeChange writes one change as "auth: key -> public", and the
// source as "source: changed (version 3)".
func describeChange(ch picloud.FunctionChange) string {
	if ch.Field == "source" {
		return "source: changed (" + ch.To + ")"
	}
	return fmt.Sprintf("%s: %s -> %s", ch.Field, ch.From, ch.To)
}
