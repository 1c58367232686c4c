package picloudtest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/picloud/picloud/picloudtest"
	picloud "github.com/picloud/picloud/sdk/go"
)

// One container for the package; every test still gets its own database.
func TestMain(m *testing.M) { os.Exit(picloudtest.Main(m)) }

// TestInvoke deploys functions that end in each way an invocation can, and
// checks what Invoke reports for them.
func TestInvoke(t *testing.T) {
	p := picloudtest.Start(t)
	for _, tc := range []struct {
		name       string
		source     string
		opts       []picloudtest.DeployOption
		payload    any
		wantStatus string
		wantResult any
		wantError  string // a prefix
		wantLogs   []string
	}{
		{
			name:       "greet",
			source:     `function handle(req) print("greeting " .. req.payload.name) return "Hello, " .. req.payload.name .. "!" end`,
			payload:    map[string]any{"name": "Ada"},
			wantStatus: "succeeded",
			wantResult: "Hello, Ada!",
			wantLogs:   []string{"greeting Ada"},
		},
		{
			name:       "table",
			source:     `function handle(req) return {n = 42, ok = true} end`,
			wantStatus: "succeeded",
			wantResult: map[string]any{"n": float64(42), "ok": true},
		},
		{
			name: "fail",
			source: `function handle(req)
  log.warn("about to fail")
  error("no such order")
end`,
			wantStatus: "failed",
			wantError:  "fail:3: no such order",
			wantLogs:   []string{"about to fail"},
		},
		{
			name:   "loop",
			source: `function handle(req) while true do end end`,
			// The largest instruction budget, so that the clock stops the
			// loop: without -race, go-lua runs the default 40 million
			// instructions in well under 200 ms and the error would name
			// the budget instead.
			opts: []picloudtest.DeployOption{picloudtest.Timeout(200 * time.Millisecond), picloudtest.Configure(func(b *picloud.PutFunctionJSONRequestBody) {
				b.MaxInstructions = picloud.Ptr(int64(100_000_000_000))
			})},
			wantStatus: "timed_out",
			wantError:  "loop: timed out after 200ms",
		},
		{
			name:       "config",
			source:     `function handle(req) print(secrets.TOKEN) return env.REGION end`,
			opts:       []picloudtest.DeployOption{picloudtest.Env("REGION", "eu-west"), picloudtest.Secret("TOKEN", "s3cret")},
			wantStatus: "succeeded",
			wantResult: "eu-west",
			wantLogs:   []string{"[secret TOKEN]"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fn := p.Deploy(t, tc.name, tc.source, tc.opts...)
			if fn.Name != tc.name || fn.Version != 1 {
				t.Errorf("deployed %+v", fn)
			}
			inv := p.Invoke(t, tc.name, tc.payload)
			if inv.Status != tc.wantStatus || !equalJSON(inv.Result, tc.wantResult) || !strings.HasPrefix(inv.Error, tc.wantError) {
				t.Errorf("invocation = %s %#v %q, want %s %#v %q...", inv.Status, inv.Result, inv.Error, tc.wantStatus, tc.wantResult, tc.wantError)
			}
			if (tc.wantError == "") != (inv.Error == "") {
				t.Errorf("error = %q, want %q", inv.Error, tc.wantError)
			}
			var logs []string
			for _, l := range inv.Logs {
				logs = append(logs, l.Message)
			}
			if strings.Join(logs, "\n") != strings.Join(tc.wantLogs, "\n") {
				t.Errorf("logs = %q, want %q", logs, tc.wantLogs)
			}
			if inv.ID == 0 || inv.Raw.Id != inv.ID || inv.Raw.Function != tc.name {
				t.Errorf("invocation %d, raw %+v", inv.ID, inv.Raw)
			}
		})
	}
}

func equalJSON(a, b any) bool {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		if len(am) != len(bm) {
			return false
		}
		for k, v := range am {
			if !equalJSON(v, bm[k]) {
				return false
			}
		}
		return true
	}
	return !aok && !bok && a == b
}

// TestAsync checks the asynchronous path: retries up to MaxAttempts, Wait,
// and Logs.
func TestAsync(t *testing.T) {
	p := picloudtest.Start(t)
	p.Deploy(t, "flaky", `function handle(req)
  print("attempt " .. req.attempt)
  if req.attempt < 2 then error("not yet") end
  return req.payload
end`, picloudtest.MaxAttempts(3), picloudtest.Configure(func(b *picloud.PutFunctionJSONRequestBody) {
		b.RetryBackoffMs = picloud.Ptr[int64](10)
	}))
	id := p.InvokeAsync(t, "flaky", "done")
	inv := p.Wait(t, id)
	if inv.ID != id || inv.Status != "succeeded" || inv.Result != "done" || inv.Attempt != 2 {
		t.Fatalf("invocation = %+v", inv)
	}
	if inv.Raw.Errors == nil || len(*inv.Raw.Errors) != 1 || !strings.Contains((*inv.Raw.Errors)[0].Error, "not yet") {
		t.Errorf("earlier errors = %+v", inv.Raw.Errors)
	}
	if logs := p.Logs(t, id); len(logs) != 1 || logs[0].Message != "attempt 2" {
		t.Errorf("logs = %+v", logs)
	}
}

// TestAuth checks that keys are required by default and not WithoutAuth,
// on /v1 and on a function deployed with RequireKey.
func TestAuth(t *testing.T) {
	const source = `function handle(req) return "hi" end`
	for _, tc := range []struct {
		name     string
		opts     []picloudtest.Option
		wantKey  bool
		wantAnon int // status of an anonymous request
	}{
		{"default", nil, true, http.StatusUnauthorized},
		{"without auth", []picloudtest.Option{picloudtest.WithoutAuth()}, false, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := picloudtest.Start(t, tc.opts...)
			if (p.AdminKey != "") != tc.wantKey {
				t.Errorf("admin key %q", p.AdminKey)
			}
			p.Deploy(t, "private", source, picloudtest.RequireKey())
			anon, err := picloud.NewClientWithResponses(p.URL)
			if err != nil {
				t.Fatal(err)
			}
			list, err := anon.ListFunctionsWithResponse(t.Context())
			if err != nil || list.StatusCode() != tc.wantAnon {
				t.Errorf("anonymous list functions = %v %v, want %d", list.StatusCode(), err, tc.wantAnon)
			}
			if got := get(t, p.URL+"/fn/private", ""); tc.wantKey && got != http.StatusUnauthorized {
				t.Errorf("anonymous /fn/private = %d, want 401", got)
			}
			if got := get(t, p.URL+"/fn/private", p.AdminKey); got != http.StatusOK {
				t.Errorf("/fn/private with the admin key = %d, want 200", got)
			}
		})
	}
}

func get(t *testing.T, url, key string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode
}

// TestFreshDatabase checks that tests sharing the container do not see each
// other's data, and that Pool reaches the platform's tables.
func TestFreshDatabase(t *testing.T) {
	const counter = `function handle(req) return kv.incr("n") end`
	seen := map[string]bool{}
	for _, name := range []string{"first", "second"} {
		t.Run(name, func(t *testing.T) {
			p := picloudtest.Start(t)
			var db string
			if err := p.Pool.QueryRow(t.Context(), "SELECT current_database()").Scan(&db); err != nil {
				t.Fatal(err)
			}
			if seen[db] {
				t.Errorf("database %s reused", db)
			}
			seen[db] = true
			p.Deploy(t, "counter", counter)
			if inv := p.Invoke(t, "counter", nil); inv.Result != float64(1) {
				t.Errorf("first count in a fresh database = %v (%s)", inv.Result, inv.Error)
			}
			var n int
			if err := p.Pool.QueryRow(t.Context(), "SELECT value::int FROM picloud.kv WHERE function = 'counter' AND key = 'n'").Scan(&n); err != nil || n != 1 {
				t.Errorf("kv row = %d, %v", n, err)
			}
		})
	}
	// Subtests that skipped (no Docker, no URL) saw no database.
	if len(seen) == 0 {
		t.Skip("no platform started")
	}
	if len(seen) != 2 {
		t.Errorf("databases %v", seen)
	}
}

// TestDatabaseURL runs a platform on an existing server, found through the
// environment as a user would set it; the container's server stands in for
// it. The database must be new, and gone after the test.
func TestDatabaseURL(t *testing.T) {
	outer := picloudtest.Start(t)
	var outerDB string
	if err := outer.Pool.QueryRow(t.Context(), "SELECT current_database()").Scan(&outerDB); err != nil {
		t.Fatal(err)
	}
	var innerDB string
	t.Run("inner", func(t *testing.T) {
		t.Setenv(picloudtest.EnvDatabaseURL, outer.DatabaseURL)
		p := picloudtest.Start(t)
		if err := p.Pool.QueryRow(t.Context(), "SELECT current_database()").Scan(&innerDB); err != nil {
			t.Fatal(err)
		}
		if innerDB == outerDB {
			t.Fatalf("inner platform runs in the outer test's database %s", innerDB)
		}
		p.Deploy(t, "hello", `function handle(req) return "hi" end`)
		if inv := p.Invoke(t, "hello", nil); inv.Result != "hi" {
			t.Errorf("invoke = %+v", inv)
		}
	})
	var exists bool
	if err := outer.Pool.QueryRow(t.Context(), "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", innerDB).Scan(&exists); err != nil || exists {
		t.Errorf("database %s still exists after its test: %v, %v", innerDB, exists, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, outer.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(ctx, "SELECT count(*) FROM picloud.functions").Scan(&n)
	if err != nil || n != 0 {
		t.Errorf("the outer database has %d functions (%v): the inner test wrote to it", n, err)
	}
}

// TestNew runs a platform that no test cleans up after: Close stops it and
// drops its database, and a second Close changes nothing.
func TestNew(t *testing.T) {
	outer := picloudtest.Start(t) // skips without PostgreSQL; New finds the same server
	p, err := picloudtest.New(t.Context(), picloudtest.WithoutAuth())
	if err != nil {
		t.Fatal(err)
	}
	var db string
	if err := p.Pool.QueryRow(t.Context(), "SELECT current_database()").Scan(&db); err != nil {
		p.Close()
		t.Fatal(err)
	}
	if got := get(t, p.URL+"/v1/functions", ""); got != http.StatusOK {
		t.Errorf("GET /v1/functions = %d", got)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	var exists bool
	if err := outer.Pool.QueryRow(t.Context(), "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil || exists {
		t.Errorf("database %s still exists after Close: %v, %v", db, exists, err)
	}
	if res, err := http.Get(p.URL + "/v1/functions"); err == nil {
		res.Body.Close()
		t.Errorf("the server still answers after Close: %d", res.StatusCode)
	}
}

// TestPrivateHTTP checks that a function reaches a local stand-in for an
// upstream API once the platform and the function allow it.
func TestPrivateHTTP(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "pong")
	}))
	t.Cleanup(upstream.Close)
	host := strings.TrimPrefix(upstream.URL, "http://")
	const source = `function handle(req) return http.request{url = req.payload}.body end`
	for _, tc := range []struct {
		name   string
		opts   []picloudtest.Option
		status string
	}{
		{"refused by default", nil, "failed"},
		{"allowed", []picloudtest.Option{picloudtest.WithPrivateHTTP()}, "succeeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := picloudtest.Start(t, tc.opts...)
			p.Deploy(t, "ping", source, picloudtest.AllowHTTP(host))
			inv := p.Invoke(t, "ping", upstream.URL)
			if inv.Status != tc.status || (tc.status == "succeeded" && inv.Result != "pong") {
				t.Errorf("invocation = %s %v %q, want %s", inv.Status, inv.Result, inv.Error, tc.status)
			}
		})
	}
}

// TestProcessSandboxes runs Lua in sandbox processes, which Main serves.
func TestProcessSandboxes(t *testing.T) {
	p := picloudtest.Start(t, picloudtest.WithProcessSandboxes())
	p.Deploy(t, "hello", `function handle(req) return "from a sandbox" end`)
	if inv := p.Invoke(t, "hello", nil); inv.Result != "from a sandbox" {
		t.Errorf("invocation = %+v", inv)
	}
}

// TestDeployRefused checks that a source that does not compile fails the
// test that deploys it, with the platform's reason.
func TestDeployRefused(t *testing.T) {
	p := picloudtest.Start(t)
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Deploy(rec, "bad", "function handle(")
	}()
	<-done
	if !strings.Contains(rec.msg, "picloudtest: deploy bad: 422 Unprocessable Entity: the source does not compile") {
		t.Errorf("Deploy failed the test with %q", rec.msg)
	}
}

// fatalRecorder keeps the message of Fatalf and ends its goroutine, as
// testing.T does, without failing the real test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
