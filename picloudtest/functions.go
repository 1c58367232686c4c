package picloudtest

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/picloud/picloud/queue"
	picloud "github.com/picloud/picloud/sdk/go"
)

// The helpers below take the test they report to as their first argument,
// rather than remembering Start's: a subtest that calls them must fail
// itself, from its own goroutine, not the test that started the platform.

// DeployOption configures a function deployed with Deploy or DeployFile.
type DeployOption func(*deployment)

type deployment struct {
	body    picloud.PutFunctionJSONRequestBody
	env     [][2]string
	secrets [][2]string
}

// Timeout sets the wall-clock limit of one attempt (the platform's default
// is 10 s).
func Timeout(limit time.Duration) DeployOption {
	return func(d *deployment) { d.body.TimeoutMs = picloud.Ptr(limit.Milliseconds()) }
}

// MaxAttempts sets how many times an asynchronous invocation runs before it
// fails; synchronous ones (Invoke) always run once.
func MaxAttempts(n int) DeployOption {
	return func(d *deployment) { d.body.MaxAttempts = picloud.Ptr(int64(n)) }
}

// RequireKey makes /fn/{name} answer only callers with an API key.
func RequireKey() DeployOption {
	return func(d *deployment) { d.body.Auth = picloud.Ptr(picloud.PutFunctionInputBodyAuthKey) }
}

// AllowHTTP lists the hosts the function may reach with http.request, such
// as "127.0.0.1:41234" for an httptest.Server (which also needs the
// platform's WithPrivateHTTP).
func AllowHTTP(hosts ...string) DeployOption {
	return func(d *deployment) { d.body.HttpAllow = &hosts }
}

// Env sets a configuration value, env.NAME in the script.
func Env(name, value string) DeployOption {
	return func(d *deployment) { d.env = append(d.env, [2]string{name, value}) }
}

// Secret sets a secret, secrets.NAME in the script.
func Secret(name, value string) DeployOption {
	return func(d *deployment) { d.secrets = append(d.secrets, [2]string{name, value}) }
}

// Configure edits the request body directly, for settings without an
// option of their own (max_concurrency, retry_backoff_ms, ...).
func Configure(edit func(*picloud.PutFunctionJSONRequestBody)) DeployOption {
	return func(d *deployment) { edit(&d.body) }
}

// Deploy creates or replaces function name with the Lua source and returns
// it as the API describes it. It fails t if the platform refuses it, e.g.
// because the source does not compile.
//
//	fn := p.Deploy(t, "notify", source,
//		picloudtest.Timeout(2*time.Second),
//		picloudtest.Env("REGION", "eu-west"),
//		picloudtest.Secret("TOKEN", "test-token"),
//		picloudtest.RequireKey(),
//	)
//	// fn.Url is "/fn/notify"
func (p *Platform) Deploy(t testing.TB, name, source string, opts ...DeployOption) picloud.FunctionBody {
	t.Helper()
	d := deployment{body: picloud.PutFunctionJSONRequestBody{Source: source}}
	for _, opt := range opts {
		opt(&d)
	}
	ctx := t.Context()
	res, err := p.Client.PutFunctionWithResponse(ctx, name, d.body)
	check(t, "deploy "+name, res, err)
	fn := res.JSON200
	if res.StatusCode() == http.StatusCreated {
		fn = res.JSON201
	}
	if fn == nil {
		t.Fatalf("picloudtest: deploy %s: answer %d without a function: %s", name, res.StatusCode(), res.Body)
	}
	for _, kv := range d.env {
		res, err := p.Client.SetFunctionEnvWithResponse(ctx, name, kv[0], picloud.SetFunctionEnvJSONRequestBody{Value: kv[1]})
		check(t, "set env "+kv[0]+" of "+name, res, err)
	}
	for _, kv := range d.secrets {
		res, err := p.Client.SetFunctionSecretWithResponse(ctx, name, kv[0], picloud.SetFunctionSecretJSONRequestBody{Value: kv[1]})
		check(t, "set secret "+kv[0]+" of "+name, res, err)
	}
	return *fn
}

// DeployFile is Deploy with the source read from path, relative to the
// test's package directory (e.g. "testdata/hello.lua").
func (p *Platform) DeployFile(t testing.TB, name, path string, opts ...DeployOption) picloud.FunctionBody {
	t.Helper()
	source, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("picloudtest: deploy %s: %v", name, err)
	}
	return p.Deploy(t, name, string(source), opts...)
}

// Invocation is one run of a function, as the API reports it.
type Invocation struct {
	ID int64
	// Status is succeeded, failed, timed_out or cancelled once finished;
	// queued or running before.
	Status string
	// Result is the function's return value decoded from JSON (a string,
	// float64, bool, map[string]any, []any or nil). For calls through
	// /fn/{name} it is the HTTP response {status, headers, body}.
	Result any
	// Error says why the latest attempt failed, with the Lua line where
	// there is one; empty on success.
	Error string
	// Logs are the lines the latest attempt printed or logged.
	Logs []picloud.LogEntryBody
	// Attempt counts the attempts started so far.
	Attempt int64
	// Raw is everything the API returned: timings, request, payload,
	// errors of earlier attempts, ...
	Raw picloud.InvocationBody
}

func newInvocation(b picloud.InvocationBody) *Invocation {
	inv := &Invocation{ID: b.Id, Status: string(b.Status), Result: b.Result, Attempt: b.Attempt, Raw: b}
	if b.Error != nil {
		inv.Error = *b.Error
	}
	if b.Logs != nil {
		inv.Logs = *b.Logs
	}
	return inv
}

// Invoke runs function name once with payload (req.payload in the script;
// nil for none), waits for it to finish and returns the invocation,
// whatever its status: a function that fails is something to assert on,
// not a failure of t. It fails t when the platform does not answer with an
// invocation, e.g. for a function that does not exist.
func (p *Platform) Invoke(t testing.TB, name string, payload any) *Invocation {
	t.Helper()
	res, err := p.Client.InvokeFunctionWithResponse(t.Context(), name, nil, picloud.InvokeFunctionJSONRequestBody{Payload: payload})
	check(t, "invoke "+name, res, err)
	if res.JSON200 == nil {
		t.Fatalf("picloudtest: invoke %s: answer %d without an invocation: %s", name, res.StatusCode(), res.Body)
	}
	return newInvocation(*res.JSON200)
}

// InvokeAsync queues an invocation of function name and returns its id at
// once. Unlike Invoke, it gets the function's MaxAttempts. Wait for it with
// Wait.
//
//	p.DeployFile(t, "sync_orders", "testdata/sync_orders.lua", picloudtest.MaxAttempts(3))
//	id := p.InvokeAsync(t, "sync_orders", map[string]any{"since": "2024-01-01"})
//	if inv := p.Wait(t, id); inv.Status != "succeeded" {
//		t.Errorf("after %d attempts: %s", inv.Attempt, inv.Error)
//	}
func (p *Platform) InvokeAsync(t testing.TB, name string, payload any) int64 {
	t.Helper()
	res, err := p.Client.InvokeFunctionWithResponse(t.Context(), name, nil,
		picloud.InvokeFunctionJSONRequestBody{Payload: payload, Async: picloud.Ptr(true)})
	check(t, "invoke "+name, res, err)
	if res.JSON202 == nil {
		t.Fatalf("picloudtest: invoke %s: answer %d without an invocation: %s", name, res.StatusCode(), res.Body)
	}
	return res.JSON202.Id
}

// waitLimit bounds Wait, so that a stuck invocation fails its test with
// its state rather than hanging until go test's own timeout.
const waitLimit = 5 * time.Minute

// Wait returns invocation id once it has finished (retries included),
// failing t if it is still queued or running after five minutes.
func (p *Platform) Wait(t testing.TB, id int64) *Invocation {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	for {
		res, err := p.Client.GetInvocationWithResponse(ctx, id, &picloud.GetInvocationParams{Wait: picloud.Ptr("10s")})
		if ctx.Err() != nil {
			t.Fatalf("picloudtest: invocation %d did not finish within %s", id, waitLimit)
		}
		check(t, "wait for invocation", res, err)
		if res.JSON200 == nil {
			t.Fatalf("picloudtest: invocation %d: answer %d without an invocation: %s", id, res.StatusCode(), res.Body)
		}
		if queue.Status(res.JSON200.Status).Final() {
			return newInvocation(*res.JSON200)
		}
	}
}

// Logs returns the lines invocation id's latest attempt printed or logged
// so far.
func (p *Platform) Logs(t testing.TB, id int64) []picloud.LogEntryBody {
	t.Helper()
	res, err := p.Client.GetInvocationWithResponse(t.Context(), id, nil)
	check(t, "read invocation", res, err)
	if res.JSON200 == nil || res.JSON200.Logs == nil {
		return nil
	}
	return *res.JSON200.Logs
}

// check fails t unless the request got a 2xx answer.
func check(t testing.TB, what string, res picloud.Response, err error) {
	t.Helper()
	if err == nil {
		err = picloud.CheckResponse(res)
	}
	if err != nil {
		t.Fatalf("picloudtest: %s: %v", what, err)
	}
}
