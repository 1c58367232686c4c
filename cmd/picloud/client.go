package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	picloud "github.com/picloud/picloud/sdk/go"
)

// clientFlags are the flags of every command that talks to a server. Each
// command embeds them, so they go after the command name, and each gets
// the exit codes as its detailed help.
type clientFlags struct {
	URL    string `name:"url" env:"PICLOUD_URL" placeholder:"URL" default:"http://127.0.0.1:8080" help:"Base URL of the PiCloud server."`
	APIKey string `name:"api-key" env:"PICLOUD_API_KEY" placeholder:"KEY" help:"API key, sent as a bearer token; prefer the environment variable, which stays out of the shell history."`
	Output string `name:"output" short:"o" enum:"text,json" default:"text" help:"Output format: text (tables) or json (the API's JSON, for scripts)."`
}

// Help is the detailed help of every client command.
func (clientFlags) Help() string { return exitCodesHelp }

func (f *clientFlags) client() (*picloud.ClientWithResponses, error) {
	c, err := picloud.NewClientWithResponses(f.URL, picloud.WithAPIKey(f.APIKey),
		picloud.WithHTTPClient(hintingDoer{client: http.DefaultClient, baseURL: f.URL}))
	if err != nil {
		return nil, withExitCode(exitUsage, fmt.Errorf("--url %q: %w", f.URL, err))
	}
	return c, nil
}

func (f *clientFlags) json() bool { return f.Output == "json" }

// call checks what a generated client method returned: a transport error,
// or an answer outside 2xx as an error with its exit code.
func call[R picloud.Response](r R, err error) (R, error) {
	if err != nil {
		return r, fmt.Errorf("request failed: %w", err)
	}
	return r, apiError(r)
}

type fnCmd struct {
	Deploy fnDeployCmd `cmd:"" help:"Create a function from a Lua file, or deploy new source; options not given keep their values."`
	List   fnListCmd   `cmd:"" aliases:"ls" help:"List functions."`
	Get    fnGetCmd    `cmd:"" help:"Show a function with its options and source."`
	Rm     fnRmCmd     `cmd:"" aliases:"delete" help:"Delete a function; its invocations are kept."`
}

func milliseconds(d *time.Duration) *int64 {
	if d == nil {
		return nil
	}
	return picloud.Ptr(d.Milliseconds())
}

type fnListCmd struct {
	clientFlags
}

func (c *fnListCmd) Run(ctx context.Context, kctx *kong.Context) error {
	client, err := c.client()
	if err != nil {
		return err
	}
	res, err := call(client.ListFunctionsWithResponse(ctx))
	if err != nil {
		return err
	}
	if c.json() {
		return printJSON(kctx.Stdout, res.Body)
	}
	var fns []picloud.FunctionBody
	if res.JSON200 != nil && res.JSON200.Functions != nil {
		fns = *res.JSON200.Functions
	}
	return printFunctions(kctx.Stdout, fns)
}

type fnGetCmd struct {
	clientFlags
	Name string `arg:"" help:"Function name."`
}

func (c *fnGetCmd) Run(ctx context.Context, kctx *kong.Context) error {
	client, err := c.client()
	if err != nil {
		return err
	}
	res, err := call(client.GetFunctionWithResponse(ctx, c.Name))
	if err != nil {
		return err
	}
	if c.json() {
		return printJSON(kctx.Stdout, res.Body)
	}
	if res.JSON200 == nil {
		return fmt.Errorf("unexpected answer %d without a function", res.StatusCode())
	}
	return printFunction(kctx.Stdout, *res.JSON200)
}

type fnRmCmd struct {
	clientFlags
	Name string `arg:"" help:"Function name."`
}

func (c *fnRmCmd) Run(ctx context.Context, kctx *kong.Context) error {
	client, err := c.client()
	if err != nil {
		return err
	}
	if _, err := call(client.DeleteFunctionWithResponse(ctx, c.Name)); err != nil {
		return err
	}
	if c.json() {
		// 204 has no body; scripts still get a JSON document to parse.
		return printJSON(kctx.Stdout, []byte(fmt.Sprintf(`{"deleted":%q}`, c.Name)))
	}
	fmt.Fprintf(kctx.Stdout, "deleted %s\n", c.Name)
	return nil
}

type invokeCmd struct {
	clientFlags
	Name           string         `arg:"" help:"Function name."`
	Data           string         `short:"d" placeholder:"JSON|@FILE" help:"Payload, the script's req.payload: JSON, or @file to read it from a file (@- for standard input)."`
	Async          bool           `help:"Queue the invocation and print its id instead of waiting for the result."`
	Timeout        *time.Duration `placeholder:"DURATION" help:"Wall-clock limit of the attempt, overriding the function's."`
	IdempotencyKey string         `placeholder:"KEY" help:"A repeat with the same key within 24 h returns the first invocation instead of running again."`
}

func (c *invokeCmd) Run(ctx context.Context, kctx *kong.Context) error {
	client, err := c.client()
	if err != nil {
		return err
	}
	body := picloud.InvokeFunctionJSONRequestBody{TimeoutMs: milliseconds(c.Timeout)}
	if c.Data != "" {
		payload, err := readPayload(c.Data, os.Stdin)
		if err != nil {
			return withExitCode(exitUsage, err)
		}
		body.Payload = payload
	}
	if c.Async {
		body.Async = picloud.Ptr(true)
	}
	if c.IdempotencyKey != "" {
		body.IdempotencyKey = &c.IdempotencyKey
	}
	res, err := call(client.InvokeFunctionWithResponse(ctx, c.Name, nil, body))
	if err != nil {
		return err
	}
	inv := res.JSON200
	if res.JSON202 != nil {
		inv = res.JSON202
	}
	if inv == nil {
		return fmt.Errorf("unexpected answer %d without an invocation", res.StatusCode())
	}
	if c.json() {
		if err := printJSON(kctx.Stdout, res.Body); err != nil {
			return err
		}
	} else if c.Async {
		fmt.Fprintln(kctx.Stdout, inv.Id)
	} else if inv.Status == picloud.InvocationBodyStatusSucceeded {
		if err := printResult(kctx.Stdout, inv.Result); err != nil {
			return err
		}
	}
	if c.Async {
		return nil
	}
	// A repeated idempotency key returns the first invocation, which may
	// still be queued; only a finished, unsuccessful one is exit code 5.
	return unsuccessful(*inv)
}

// readPayload reads --data: inline JSON, or @file, or @- for in.
func readPayload(data string, in io.Reader) (json.RawMessage, error) {
	raw := []byte(data)
	if name, ok := strings.CutPrefix(data, "@"); ok {
		var err error
		if name == "-" {
			raw, err = io.ReadAll(in)
		} else {
			raw, err = os.ReadFile(name)
		}
		if err != nil {
			return nil, fmt.Errorf("--data: %w", err)
		}
	}
	if !json.Valid(raw) {
		return nil, errors.New(`--data: not valid JSON (a string needs quotes: --data '"text"')`)
	}
	return json.RawMessage(raw), nil
}

// unsuccessful is an exitRunFail error for an invocation that finished
// without succeeding.
func unsuccessful(inv picloud.InvocationBody) error {
	switch inv.Status {
	case picloud.InvocationBodyStatusFailed, picloud.InvocationBodyStatusTimedOut, picloud.InvocationBodyStatusCancelled:
	default:
		return nil
	}
	msg := fmt.Sprintf("invocation %d %s", inv.Id, strings.ReplaceAll(string(inv.Status), "_", " "))
	if inv.Error != nil && *inv.Error != "" {
		msg += ": " + *inv.Error
	}
	return withExitCode(exitRunFail, errors.New(msg))
}

type invCmd struct {
	Get    invGetCmd    `cmd:"" help:"Show an invocation: status, timings, result, error."`
	Ls     invLsCmd     `cmd:"" aliases:"list" help:"List invocations, newest first."`
	Cancel invCancelCmd `cmd:"" help:"Cancel a queued or running invocation."`
}

type invGetCmd struct {
	clientFlags
	ID   int64         `arg:"" name:"id" help:"Invocation id (the X-Invocation-Id header of a /fn answer)."`
	Wait time.Duration `placeholder:"DURATION" help:"Wait up to this long (at most 5m) for the invocation to finish."`
}

func (c *invGetCmd) Run(ctx context.Context, kctx *kong.Context) error {
	inv, body, err := getInvocation(ctx, &c.clientFlags, c.ID, c.Wait)
	if err != nil {
		return err
	}
	if c.json() {
		err = printJSON(kctx.Stdout, body)
	} else {
		err = printInvocation(kctx.Stdout, inv)
	}
	if err != nil {
		return err
	}
	return unsuccessful(inv)
}

func getInvocation(ctx context.Context, f *clientFlags, id int64, wait time.Duration) (picloud.InvocationBody, []byte, error) {
	client, err := f.client()
	if err != nil {
		return picloud.InvocationBody{}, nil, err
	}
	var params picloud.GetInvocationParams
	if wait > 0 {
		params.Wait = picloud.Ptr(wait.String())
	}
	res, err := call(client.GetInvocationWithResponse(ctx, id, &params))
	if err != nil {
		return picloud.InvocationBody{}, nil, err
	}
	if res.JSON200 == nil {
		return picloud.InvocationBody{}, nil, fmt.Errorf("unexpected answer %d without an invocation", res.StatusCode())
	}
	return *res.JSON200, res.Body, nil
}

type invLsCmd struct {
	clientFlags
	Function string  `placeholder:"NAME" help:"Only this function's invocations."`
	Status   *string `placeholder:"STATUS" enum:"queued,running,succeeded,failed,timed_out,cancelled" help:"Only invocations in this status: queued, running, succeeded, failed, timed_out or cancelled."`
	Limit    int64   `placeholder:"N" help:"Page size, 1 to 500 (server default 50)."`
	Cursor   string  `placeholder:"CURSOR" help:"Start after this cursor, printed at the end of the previous page."`
}

func (c *invLsCmd) Run(ctx context.Context, kctx *kong.Context) error {
	client, err := c.client()
	if err != nil {
		return err
	}
	var params picloud.ListInvocationsParams
	if c.Function != "" {
		params.Function = &c.Function
	}
	if c.Status != nil {
		params.Status = picloud.Ptr(picloud.ListInvocationsParamsStatus(*c.Status))
	}
	if c.Limit != 0 {
		params.Limit = &c.Limit
	}
	if c.Cursor != "" {
		params.Cursor = &c.Cursor
	}
	res, err := call(client.ListInvocationsWithResponse(ctx, &params))
	if err != nil {
		return err
	}
	if c.json() {
		return printJSON(kctx.Stdout, res.Body)
	}
	if res.JSON200 == nil {
		return fmt.Errorf("unexpected answer %d without invocations", res.StatusCode())
	}
	var invs []picloud.InvocationBody
	if res.JSON200.Invocations != nil {
		invs = *res.JSON200.Invocations
	}
	if err := printInvocations(kctx.Stdout, invs); err != nil {
		return err
	}
	if next := res.JSON200.NextCursor; next != nil && *next != "" {
		// On stderr, so that the table on stdout stays a table.
		fmt.Fprintf(kctx.Stderr, "more: --cursor %s\n", *next)
	}
	return nil
}

type invCancelCmd struct {
	clientFlags
	ID int64 `arg:"" name:"id" help:"Invocation id."`
}

func (c *invCancelCmd) Run(ctx context.Context, kctx *kong.Context) error {
	client, err := c.client()
	if err != nil {
		return err
	}
	res, err := call(client.CancelInvocationWithResponse(ctx, c.ID))
	if err != nil {
		return err
	}
	if c.json() {
		return printJSON(kctx.Stdout, res.Body)
	}
	fmt.Fprintf(kctx.Stdout, "cancelled %d\n", c.ID)
	return nil
}

type logsCmd struct {
	clientFlags
	ID     int64         `arg:"" name:"id" help:"Invocation id."`
	Wait   time.Duration `placeholder:"DURATION" help:"Wait up to this long (at most 5m) for the invocation to finish first."`
	Follow bool          `short:"f" help:"Stream the invocation's steps (to stderr) and log lines until it finishes; exits 5 unless it succeeded. With -o json, one JSON object per line."`
}

func (c *logsCmd) Run(ctx context.Context, kctx *kong.Context) error {
	if c.Follow {
		return c.follow(ctx, kctx)
	}
	inv, body, err := getInvocation(ctx, &c.clientFlags, c.ID, c.Wait)
	if err != nil {
		return err
	}
	if c.json() {
		// The API's own JSON for the lines, not a re-encoding of them.
		var raw struct {
			Logs json.RawMessage `json:"logs"`
		}
		if err := json.Unmarshal(body, &raw); err != nil {
			return fmt.Errorf("decode the invocation: %w", err)
		}
		if len(raw.Logs) == 0 {
			raw.Logs = json.RawMessage("[]")
		}
		return printJSON(kctx.Stdout, raw.Logs)
	}
	var logs []picloud.LogEntryBody
	if inv.Logs != nil {
		logs = *inv.Logs
	}
	return printLogs(kctx.Stdout, logs)
}
