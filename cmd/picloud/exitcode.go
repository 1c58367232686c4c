package main

import (
	"errors"
	"net/http"

	"github.com/alecthomas/kong"

	picloud "github.com/picloud/picloud/sdk/go"
)

// Exit codes scripts can rely on; docs/cli.md lists them too.
const (
	exitOK       = 0
	exitFailure  = 1 // network, server 5xx, anything else
	exitUsage    = 2 // bad arguments, or a request the server rejected (400, 422)
	exitAuth     = 3 // 401, 403
	exitNotFound = 4 // 404
	exitRunFail  = 5 // the invocation ran but did not succeed
)

const exitCodesHelp = `Exit status:
  0  success
  1  other errors: network, server 5xx
  2  usage errors, and requests the server rejects (400, 422)
  3  missing, unknown or insufficient API key (401, 403)
  4  not found (404)
  5  the invocation ran but failed, timed out or was cancelled
     (invoke without --async, inv get)`

// exitError carries the process's exit code to main. It is also a
// kong.ExitCoder, so kong's own fatal paths use the same code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }

func withExitCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// exitCode is what main exits with after err.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	if e := (*exitError)(nil); errors.As(err, &e) {
		return e.code
	}
	return exitFailure
}

// apiError gives an answer outside 2xx the exit code of its status.
func apiError(r picloud.Response) error {
	err := picloud.CheckResponse(r)
	if err == nil {
		return nil
	}
	code := exitFailure
	switch r.StatusCode() {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		code = exitUsage
	case http.StatusUnauthorized, http.StatusForbidden:
		code = exitAuth
	case http.StatusNotFound:
		code = exitNotFound
	}
	return withExitCode(code, err)
}

// parse parses args into c. A parse error exits with exitUsage where kong
// would use 80, a code no shell script expects.
func parse(c *cli, args []string, opts ...kong.Option) *kong.Context {
	parser := kong.Must(c, append(kongOptions(), opts...)...)
	kctx, err := parser.Parse(args)
	if err != nil {
		usageError(parser, err)
	}
	return kctx
}
