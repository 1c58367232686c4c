package picloud_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/internal/dbtest"
	"github.com/picloud/picloud/internal/platformtest"
	picloud "github.com/picloud/picloud/sdk/go"
)

func TestMain(m *testing.M) { executor.RunSandboxIfChild(); os.Exit(dbtest.Main(m)) }

func readScript(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../testdata/functions/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func newClient(t *testing.T, url, key string) *picloud.ClientWithResponses {
	t.Helper()
	c, err := picloud.NewClientWithResponses(url, picloud.WithAPIKey(key))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ok fails the test unless the call reached the server and got a 2xx.
func ok(t *testing.T, r picloud.Response, err error) {
	t.Helper()
	if err == nil {
		err = picloud.CheckResponse(r)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestClient drives the generated client through a function's life against
// a real server.
func TestClient(t *testing.T) {
	ctx := context.Background()
	p := platformtest.Start(t, platformtest.Options{Auth: true})
	c := newClient(t, p.URL, p.AdminKey)

	put, err := c.PutFunctionWithResponse(ctx, "hello", picloud.PutFunctionJSONRequestBody{
		Source:      readScript(t, "hello.lua"),
		TimeoutMs:   picloud.Ptr[int64](5000),
		MaxAttempts: picloud.Ptr[int64](2),
	})
	ok(t, put, err)
	if put.StatusCode() != http.StatusCreated || put.JSON201 == nil || put.JSON201.Version != 1 {
		t.Fatalf("deploy = %d %s", put.StatusCode(), put.Body)
	}
	if fn := put.JSON201; fn.TimeoutMs == nil || *fn.TimeoutMs != 5000 || *fn.MaxAttempts != 2 || fn.Url != "/fn/hello" {
		t.Errorf("deployed function = %+v", fn)
	}

	list, err := c.ListFunctionsWithResponse(ctx)
	ok(t, list, err)
	if fns := list.JSON200.Functions; fns == nil || len(*fns) != 1 || (*fns)[0].Name != "hello" {
		t.Errorf("functions = %s", list.Body)
	}
	got, err := c.GetFunctionWithResponse(ctx, "hello")
	ok(t, got, err)
	if got.JSON200.Source == nil || *got.JSON200.Source != readScript(t, "hello.lua") {
		t.Errorf("get function source = %v", got.JSON200.Source)
	}

	sync, err := c.InvokeFunctionWithResponse(ctx, "hello", nil, picloud.InvokeFunctionJSONRequestBody{Payload: map[string]any{"n": 1}})
	ok(t, sync, err)
	inv := sync.JSON200
	if sync.StatusCode() != http.StatusOK || inv == nil || inv.Status != picloud.InvocationBodyStatus("succeeded") || inv.Result != "Hello, world!" {
		t.Fatalf("sync invoke = %d %s", sync.StatusCode(), sync.Body)
	}
	if inv.Logs == nil || len(*inv.Logs) != 1 || (*inv.Logs)[0].Message != "greeting world" {
		t.Errorf("logs = %+v", inv.Logs)
	}

	async, err := c.InvokeFunctionWithResponse(ctx, "hello", &picloud.InvokeFunctionParams{IdempotencyKey: picloud.Ptr("k1")},
		picloud.InvokeFunctionJSONRequestBody{Async: picloud.Ptr(true)})
	ok(t, async, err)
	if async.StatusCode() != http.StatusAccepted || async.JSON202 == nil || async.Headers202 == nil || async.Headers202.Location == nil {
		t.Fatalf("async invoke = %d %s", async.StatusCode(), async.Body)
	}
	id := async.JSON202.Id
	done, err := c.GetInvocationWithResponse(ctx, id, &picloud.GetInvocationParams{Wait: picloud.Ptr("10s")})
	ok(t, done, err)
	if done.JSON200.Id != id || done.JSON200.Status != "succeeded" || done.JSON200.IdempotencyKey == nil || *done.JSON200.IdempotencyKey != "k1" {
		t.Errorf("async invocation after wait = %s", done.Body)
	}

	page, err := c.ListInvocationsWithResponse(ctx, &picloud.ListInvocationsParams{Function: picloud.Ptr("hello"), Limit: picloud.Ptr[int64](1)})
	ok(t, page, err)
	if invs := page.JSON200.Invocations; invs == nil || len(*invs) != 1 || (*invs)[0].Id != id || page.JSON200.NextCursor == nil {
		t.Fatalf("first page = %s", page.Body)
	}
	next, err := c.ListInvocationsWithResponse(ctx, &picloud.ListInvocationsParams{
		Function: picloud.Ptr("hello"), Limit: picloud.Ptr[int64](1), Cursor: page.JSON200.NextCursor,
	})
	ok(t, next, err)
	if invs := next.JSON200.Invocations; invs == nil || len(*invs) != 1 || (*invs)[0].Id != inv.Id {
		t.Errorf("second page = %s", next.Body)
	}

	del, err := c.DeleteFunctionWithResponse(ctx, "hello")
	ok(t, del, err)
	missing, err := c.GetFunctionWithResponse(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	var apiErr *picloud.APIError
	if err := picloud.CheckResponse(missing); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound ||
		err.Error() != `404 Not Found: function "hello" does not exist` {
		t.Errorf("after delete: %v", err)
	}
}

// TestInvokeBatch enqueues a batch through the generated client and finds
// each item's invocation, in order.
func TestInvokeBatch(t *testing.T) {
	ctx := context.Background()
	p := platformtest.Start(t, platformtest.Options{Auth: true})
	c := newClient(t, p.URL, p.AdminKey)
	put, err := c.PutFunctionWithResponse(ctx, "hello", picloud.PutFunctionJSONRequestBody{Source: readScript(t, "hello.lua")})
	ok(t, put, err)

	items := []picloud.BatchItemBody{
		{Payload: map[string]any{"n": 1}},
		{IdempotencyKey: picloud.Ptr("batch-1")},
		{IdempotencyKey: picloud.Ptr("batch-1")},
		{Payload: "x", RunAt: picloud.Ptr(time.Now().Add(time.Hour))},
	}
	res, err := c.InvokeFunctionBatchWithResponse(ctx, "hello", picloud.InvokeFunctionBatchJSONRequestBody{Invocations: &items})
	ok(t, res, err)
	if res.StatusCode() != http.StatusAccepted || res.JSON202 == nil || res.JSON202.Invocations == nil || len(*res.JSON202.Invocations) != len(items) {
		t.Fatalf("batch = %d %s", res.StatusCode(), res.Body)
	}
	invs := *res.JSON202.Invocations
	if invs[1].Id != invs[2].Id || invs[0].Id >= invs[1].Id || invs[1].Id >= invs[3].Id {
		t.Errorf("ids = %+v, want ascending in item order, one for both items with key batch-1", invs)
	}
	for i, inv := range invs {
		if inv.Status != picloud.BatchInvocationBodyStatus("queued") {
			t.Errorf("item %d: status %s", i, inv.Status)
		}
	}
	done, err := c.GetInvocationWithResponse(ctx, invs[0].Id, &picloud.GetInvocationParams{Wait: picloud.Ptr("10s")})
	ok(t, done, err)
	if done.JSON200.Status != "succeeded" || done.JSON200.Trigger != "api" {
		t.Errorf("first item's invocation = %s", done.Body)
	}
	scheduled, err := c.GetInvocationWithResponse(ctx, invs[3].Id, nil)
	ok(t, scheduled, err)
	if scheduled.JSON200.Status != "queued" || scheduled.JSON200.RunAt == nil {
		t.Errorf("scheduled item's invocation = %s", scheduled.Body)
	}

	for _, tc := range []struct {
		name  string
		items []picloud.BatchItemBody
		msg   string
	}{
		{"no items", []picloud.BatchItemBody{}, "422 Unprocessable Entity: validation failed; body.invocations: "},
		{"NUL in a payload", []picloud.BatchItemBody{{}, {Payload: map[string]any{"s": "a\x00b"}}}, "422 Unprocessable Entity: validation failed; body.invocations[1].payload.s: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := c.InvokeFunctionBatchWithResponse(ctx, "hello", picloud.InvokeFunctionBatchJSONRequestBody{Invocations: &tc.items})
			if err != nil {
				t.Fatal(err)
			}
			err = picloud.CheckResponse(r)
			if err == nil || !strings.HasPrefix(err.Error(), tc.msg) {
				t.Errorf("CheckResponse = %v, want %q...", err, tc.msg)
			}
		})
	}
}

func TestCheckResponse(t *testing.T) {
	ctx := context.Background()
	p := platformtest.Start(t, platformtest.Options{Auth: true})
	c := newClient(t, p.URL, p.AdminKey)
	for _, tc := range []struct {
		name   string
		call   func() (picloud.Response, error)
		status int
		msg    string
	}{
		{"syntax error", func() (picloud.Response, error) {
			return c.PutFunctionWithResponse(ctx, "bad", picloud.PutFunctionJSONRequestBody{Source: "function handle(req)"})
		}, http.StatusUnprocessableEntity, "422 Unprocessable Entity: the source does not compile; body.source: line 1: "},
		{"invalid name", func() (picloud.Response, error) {
			return c.GetFunctionWithResponse(ctx, "Bad")
		}, http.StatusUnprocessableEntity, "422 Unprocessable Entity: validation failed; path.name: "},
		{"unknown invocation", func() (picloud.Response, error) {
			return c.GetInvocationWithResponse(ctx, 999, nil)
		}, http.StatusNotFound, "404 Not Found: invocation 999 does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tc.call()
			if err != nil {
				t.Fatal(err)
			}
			err = picloud.CheckResponse(r)
			var apiErr *picloud.APIError
			if !errors.As(err, &apiErr) || apiErr.StatusCode != tc.status || len(err.Error()) < len(tc.msg) || err.Error()[:len(tc.msg)] != tc.msg {
				t.Errorf("CheckResponse = %v, want %d %q...", err, tc.status, tc.msg)
			}
		})
	}
}

// TestAuth checks that WithAPIKey reaches the server's checks: scopes on
// /v1, and per-function auth on /fn.
func TestAuth(t *testing.T) {
	ctx := context.Background()
	p := platformtest.Start(t, platformtest.Options{Auth: true})
	admin := newClient(t, p.URL, p.AdminKey)
	put, err := admin.PutFunctionWithResponse(ctx, "hello", picloud.PutFunctionJSONRequestBody{
		Source: readScript(t, "hello.lua"),
		Auth:   picloud.Ptr(picloud.PutFunctionInputBodyAuthKey),
	})
	ok(t, put, err)
	if put.JSON201 == nil || put.JSON201.Auth == nil || *put.JSON201.Auth != picloud.FunctionBodyAuthKey {
		t.Fatalf("deploy with auth key = %s", put.Body)
	}
	created, err := admin.CreateKeyWithResponse(ctx, picloud.CreateKeyJSONRequestBody{Name: picloud.Ptr("sdk test"), Scope: "invoke"})
	ok(t, created, err)
	invokeKey := created.JSON201.Key
	if invokeKey == "" {
		t.Fatalf("created key = %s", created.Body)
	}

	for _, tc := range []struct {
		name   string
		key    string
		call   func(c *picloud.ClientWithResponses) (picloud.Response, error)
		status int
	}{
		{"invoke key deploys", invokeKey, func(c *picloud.ClientWithResponses) (picloud.Response, error) {
			return c.PutFunctionWithResponse(ctx, "other", picloud.PutFunctionJSONRequestBody{Source: readScript(t, "hello.lua")})
		}, http.StatusForbidden},
		{"invoke key invokes", invokeKey, func(c *picloud.ClientWithResponses) (picloud.Response, error) {
			return c.InvokeFunctionWithResponse(ctx, "hello", nil, picloud.InvokeFunctionJSONRequestBody{})
		}, http.StatusOK},
		{"invoke key invokes a batch", invokeKey, func(c *picloud.ClientWithResponses) (picloud.Response, error) {
			return c.InvokeFunctionBatchWithResponse(ctx, "hello", picloud.InvokeFunctionBatchJSONRequestBody{Invocations: &[]picloud.BatchItemBody{{}}})
		}, http.StatusAccepted},
		{"invoke key lists invocations", invokeKey, func(c *picloud.ClientWithResponses) (picloud.Response, error) {
			return c.ListInvocationsWithResponse(ctx, nil)
		}, http.StatusOK},
		{"no key invokes", "", func(c *picloud.ClientWithResponses) (picloud.Response, error) {
			return c.InvokeFunctionWithResponse(ctx, "hello", nil, picloud.InvokeFunctionJSONRequestBody{})
		}, http.StatusUnauthorized},
		{"unknown key lists functions", "pic_unknown", func(c *picloud.ClientWithResponses) (picloud.Response, error) {
			return c.ListFunctionsWithResponse(ctx)
		}, http.StatusUnauthorized},
		{"no key calls a key-only /fn", "", func(c *picloud.ClientWithResponses) (picloud.Response, error) {
			return c.CallFunctionGetWithResponse(ctx, "hello")
		}, http.StatusUnauthorized},
		{"invoke key calls a key-only /fn", invokeKey, func(c *picloud.ClientWithResponses) (picloud.Response, error) {
			return c.CallFunctionGetWithResponse(ctx, "hello")
		}, http.StatusOK},
		{"no key reads health", "", func(c *picloud.ClientWithResponses) (picloud.Response, error) {
			return c.HealthzWithResponse(ctx)
		}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tc.call(newClient(t, p.URL, tc.key))
			if err != nil {
				t.Fatal(err)
			}
			if r.StatusCode() != tc.status {
				t.Fatalf("status %d, want %d: %s", r.StatusCode(), tc.status, r.GetBody())
			}
			var apiErr *picloud.APIError
			if err := picloud.CheckResponse(r); (err != nil) != (tc.status >= 300) ||
				(err != nil && (!errors.As(err, &apiErr) || apiErr.Problem.Detail == nil)) {
				t.Errorf("CheckResponse = %v", err)
			}
		})
	}
}
