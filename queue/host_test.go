package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/hostapi"
	"github.com/picloud/picloud/internal/platformtest"
	"github.com/picloud/picloud/queue"
)

// hostWorker is a worker whose scripts may reach loopback over HTTP, on
// in-process sandboxes or, with processes, in sandbox child processes.
func hostWorker(t *testing.T, processes bool) (*queue.Client, *pgxpool.Pool) {
	t.Helper()
	pool := platformtest.Database(t)
	var exec queue.Executor
	if processes {
		s, err := executor.NewSandboxes(executor.SandboxConfig{Processes: 2, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		exec = s
	} else {
		exec = newExecutor(t)
	}
	client, err := queue.NewClient(pool, queue.Config{Executor: exec, Concurrency: 2, HTTP: hostapi.HTTPConfig{AllowPrivate: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(context.Background()) })
	return client, pool
}

func run(t *testing.T, c *queue.Client, function string, payload string) queue.Invocation {
	t.Helper()
	return waitFor(t, c, invoke(t, c, queue.InvokeParams{Function: function, Payload: json.RawMessage(payload)}).ID)
}

func TestKV(t *testing.T) {
	t.Parallel()
	for _, processes := range []bool{false, true} {
		t.Run(fmt.Sprintf("processes=%v", processes), func(t *testing.T) {
			testKV(t, processes)
		})
	}
}

func testKV(t *testing.T, processes bool) {
	ctx := context.Background()
	client, pool := hostWorker(t, processes)
	put(t, client, "store", `
function handle(req)
  local p = req.payload
  if p.op == "set" then
    kv.set(p.key, p.value, p.ttl and {ttl = p.ttl})
    local seen = kv.get(p.key) -- read your own write
    if p.fail then error("after set") end
    return seen
  elseif p.op == "get" then return {value = kv.get(p.key)}
  elseif p.op == "delete" then kv.delete(p.key) return kv.get(p.key)
  elseif p.op == "incr" then return kv.incr(p.key, p.by)
  elseif p.op == "list" then return kv.list(p.prefix, {limit = p.limit})
  end
end`, catalog.FunctionOptions{})

	set := run(t, client, "store", `{"op": "set", "key": "user:1", "value": {"name": "Ada", "tags": ["x"]}}`)
	if set.Status != queue.StatusSucceeded || !jsonEqual(set.Result, `{"name": "Ada", "tags": ["x"]}`) {
		t.Fatalf("set = %s %s %s", set.Status, set.Result, set.Error)
	}
	var fromSQL string
	if err := pool.QueryRow(ctx, `SELECT value::text FROM picloud.kv WHERE function = 'store' AND key = 'user:1'`).Scan(&fromSQL); err != nil || !strings.Contains(fromSQL, "Ada") {
		t.Errorf("picloud.kv from SQL = %q, %v", fromSQL, err)
	}

	failed := run(t, client, "store", `{"op": "set", "key": "user:2", "value": 1, "fail": true}`)
	if failed.Status != queue.StatusFailed {
		t.Fatalf("the failing set: %s", failed.Status)
	}
	if got := run(t, client, "store", `{"op": "get", "key": "user:2"}`); !jsonEqual(got.Result, `{}`) {
		t.Errorf("a failed invocation's write was kept: %s", got.Result)
	}

	run(t, client, "store", `{"op": "set", "key": "user:3", "value": 3}`)
	run(t, client, "store", `{"op": "set", "key": "other", "value": 0}`)
	list := run(t, client, "store", `{"op": "list", "prefix": "user:"}`)
	var entries []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	}
	if err := json.Unmarshal(list.Result, &entries); err != nil || len(entries) != 2 || entries[0].Key != "user:1" || entries[1].Key != "user:3" {
		t.Errorf("list = %s", list.Result)
	}
	if del := run(t, client, "store", `{"op": "delete", "key": "user:3"}`); del.Status != queue.StatusSucceeded || !jsonEqual(del.Result, "null") {
		t.Errorf("get after delete in the same invocation = %s", del.Result)
	}

	// incr is atomic across concurrent invocations.
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { run(t, client, "store", `{"op": "incr", "key": "hits"}`) })
	}
	wg.Wait()
	if got := run(t, client, "store", `{"op": "incr", "key": "hits", "by": 0.5}`); !jsonEqual(got.Result, "10.5") {
		t.Errorf("after 10 concurrent incr and one of 0.5: %s", got.Result)
	}
	if got := run(t, client, "store", `{"op": "incr", "key": "user:1"}`); got.Status != queue.StatusFailed || !strings.Contains(got.Error, "not a number") {
		t.Errorf("incr of a non-number = %s %q", got.Status, got.Error)
	}

	run(t, client, "store", `{"op": "set", "key": "brief", "value": "x", "ttl": 0.2}`)
	time.Sleep(400 * time.Millisecond)
	if got := run(t, client, "store", `{"op": "get", "key": "brief"}`); !jsonEqual(got.Result, `{}`) {
		t.Errorf("expired key still readable: %s", got.Result)
	}
}

func TestInvokeFromScript(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, _ := hostWorker(t, true)
	put(t, client, "child", echoPayload, catalog.FunctionOptions{})
	put(t, client, "parent", `
function handle(req)
  local id = picloud.invoke("child", {from = "parent"})
  if req.payload.fail then error("fail after invoking " .. id) end
  return id
end`, catalog.FunctionOptions{})
	put(t, client, "bad", `function handle(req) return picloud.invoke("nope", {}) end`, catalog.FunctionOptions{})

	parent := run(t, client, "parent", `{}`)
	var childID int64
	if err := json.Unmarshal(parent.Result, &childID); err != nil || parent.Status != queue.StatusSucceeded {
		t.Fatalf("parent = %s %s %s", parent.Status, parent.Result, parent.Error)
	}
	child := waitFor(t, client, childID)
	if child.Trigger != queue.TriggerFunction || child.ParentID == nil || *child.ParentID != parent.ID || resultOf(t, child).Payload["from"] != "parent" {
		t.Errorf("child = %+v %s", child, child.Result)
	}

	failed := run(t, client, "parent", `{"fail": true}`)
	idText := strings.TrimPrefix(failed.Error[strings.LastIndex(failed.Error, "invoking "):], "invoking ")
	var orphan int64
	fmt.Sscan(idText, &orphan)
	if _, err := client.GetInvocation(ctx, orphan); err == nil || orphan == 0 {
		t.Errorf("a failed invocation's picloud.invoke (%q) enqueued %d anyway", failed.Error, orphan)
	}
	if bad := run(t, client, "bad", `{}`); bad.Status != queue.StatusFailed || !strings.Contains(bad.Error, `function "nope" does not exist`) {
		t.Errorf("invoke of an unknown function = %s %q", bad.Status, bad.Error)
	}
}

func TestHTTPFromScript(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Echo", r.Header.Get("X-In"))
		if r.URL.Path == "/big" {
			w.Write(make([]byte, 7<<20))
			return
		}
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, body)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	client, _ := hostWorker(t, true)
	fetch := `function handle(req)
  local res = http.request{method = "POST", url = req.payload.url, headers = {["x-in"] = "hi"}, body = "\0payload"}
  return {status = res.status, body = res.body, echo = res.headers["x-echo"]}
end`
	put(t, client, "allowed", fetch, catalog.FunctionOptions{HTTPAllow: []string{host}})
	put(t, client, "closed", fetch, catalog.FunctionOptions{})
	put(t, client, "other", fetch, catalog.FunctionOptions{HTTPAllow: []string{"api.example.com"}})

	got := run(t, client, "allowed", fmt.Sprintf(`{"url": %q}`, srv.URL+"/path"))
	var res struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
		Echo   string `json:"echo"`
	}
	if err := json.Unmarshal(got.Result, &res); err != nil || res.Status != 200 || res.Body != "POST /path \uFFFDpayload" || res.Echo != "hi" {
		t.Errorf("http.request = %s %s %q", got.Status, got.Result, got.Error)
	}
	for _, tt := range []struct{ function, url, err string }{
		{"closed", srv.URL, "http.request: this function may not make HTTP requests"},
		{"other", srv.URL, "http.request: host"},
		{"other", srv.URL, "not in this function's http_allow list"},
		{"allowed", "file:///etc/passwd", "http.request: scheme"},
		{"allowed", "http://[::1", "http.request: bad url"},
		{"allowed", srv.URL + "/big", "response body over"},
	} {
		got := run(t, client, tt.function, fmt.Sprintf(`{"url": %q}`, tt.url))
		if got.Status != queue.StatusFailed || !strings.Contains(got.Error, tt.err) || strings.Contains(got.Error, "http.request: http.request") {
			t.Errorf("%s %s = %s %q, want failed with %q, named once", tt.function, tt.url, got.Status, got.Error, tt.err)
		}
	}
}

// TestHTTPRefusesPrivateAddresses: without AllowPrivate, an allowed name
// that resolves to loopback is refused at connect time (SSRF).
func TestHTTPRefusesPrivateAddresses(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "secret internal") }))
	defer srv.Close()
	client, _ := worker(t, nil) // default HTTP config: private addresses refused
	_, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "http://"), ":")
	put(t, client, "f", `function handle(req) return http.request{url = req.payload.url}.body end`,
		catalog.FunctionOptions{HTTPAllow: []string{"localhost", "127.0.0.1"}})
	for _, url := range []string{srv.URL, "http://localhost:" + port} {
		got := run(t, client, "f", fmt.Sprintf(`{"url": %q}`, url))
		if got.Status != queue.StatusFailed || !strings.Contains(got.Error, "not a public address") {
			t.Errorf("%s = %s %s %q, want refused", url, got.Status, got.Result, got.Error)
		}
	}

	// Special-purpose ranges beyond the private ones, written as literals
	// (IPv6 ones in brackets, as http_allow takes them); the unit test
	// TestSpecialAddresses lists every range.
	literals := []string{"198.18.0.1", "192.0.0.9", "240.0.0.1", "100.64.0.1", "192.0.2.1", "203.0.113.5", "255.255.255.255",
		"[2001:db8::1]:443", "[64:ff9b::a00:1]", "[2002:a00:1::1]", "[2001::1]", "[::ffff:127.0.0.1]", "[3fff::1]", "[fd00::1]"}
	put(t, client, "lit", `function handle(req) return http.request{url = req.payload.url, timeout = 0.5}.body end`,
		catalog.FunctionOptions{HTTPAllow: literals})
	for _, host := range literals {
		url := "https://" + host + "/"
		got := run(t, client, "lit", fmt.Sprintf(`{"url": %q}`, url))
		if got.Status != queue.StatusFailed || !strings.Contains(got.Error, "not a public address") {
			t.Errorf("%s = %s %s %q, want refused", url, got.Status, got.Result, got.Error)
		}
	}
}

func TestEnvAndSecrets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, _ := hostWorker(t, true)
	put(t, client, "cfg", `function handle(req)
  print("using key " .. secrets.API_KEY)
  return {region = env.REGION, key_length = #secrets.API_KEY, missing = env.NOPE}
end`, catalog.FunctionOptions{})
	for _, kv := range []struct {
		name, value string
		secret      bool
	}{{"REGION", "eu-west", false}, {"API_KEY", "sk-123456789", true}} {
		if err := catalogOf(client).SetEnv(ctx, "cfg", kv.name, kv.value, kv.secret); err != nil {
			t.Fatal(err)
		}
	}
	got := run(t, client, "cfg", `{}`)
	if got.Status != queue.StatusSucceeded || !jsonEqual(got.Result, `{"region": "eu-west", "key_length": 12}`) {
		t.Errorf("result = %s %s %q", got.Status, got.Result, got.Error)
	}
	if len(got.Logs) != 1 || strings.Contains(got.Logs[0].Message, "sk-123456789") || !strings.Contains(got.Logs[0].Message, "[secret API_KEY]") {
		t.Errorf("logs = %+v, want the secret masked", got.Logs)
	}
	env, err := catalogOf(client).GetEnv(ctx, "cfg")
	if err != nil || env.Values["REGION"] != "eu-west" || len(env.Secrets) != 1 || env.Secrets[0] != "API_KEY" || env.Values["API_KEY"] != "" {
		t.Errorf("GetEnv = %+v, %v", env, err)
	}
	if err := catalogOf(client).SetEnv(ctx, "cfg", "bad name", "x", false); err == nil {
		t.Error("a bad name was accepted")
	}
	if err := catalogOf(client).SetEnv(ctx, "nope", "X", "x", false); err == nil {
		t.Error("env for a missing function was accepted")
	}
}

func jsonEqual(got json.RawMessage, want string) bool {
	var a, b any
	return json.Unmarshal(got, &a) == nil && json.Unmarshal([]byte(want), &b) == nil && reflect.DeepEqual(a, b)
}

// TestInvokeFromScriptRefusesFarTimes: a run_at or delay that gives a time
// outside 2000-01-01 to 9999-12-31 UTC is a Lua error at the call, with its
// line; a delay of 1e300 once overflowed into a date in 1734 and ran at once.
func TestInvokeFromScriptRefusesFarTimes(t *testing.T) {
	t.Parallel()
	client, _ := hostWorker(t, false)
	put(t, client, "child", echoPayload, catalog.FunctionOptions{})
	const outside = "outside 2000-01-01 to 9999-12-31"
	for _, tc := range []struct {
		opts    string
		refused string // a part of the error, or "" for none
	}{
		{"{delay = 1e300}", outside},
		{"{delay = -1e300}", outside},
		{"{run_at = 0}", outside},
		{"{run_at = 253402300800}", outside},
		// Not numbers JSON can carry: refused before the range check.
		{"{delay = 0/0}", "unsupported value: NaN"},
		{"{run_at = 1/0}", "unsupported value: +Inf"},
		{"{delay = 60}", ""},
		{"{run_at = 946684800}", ""},
	} {
		t.Run(tc.opts, func(t *testing.T) {
			put(t, client, "parent", "function handle(req)\n  return picloud.invoke(\"child\", {}, "+tc.opts+")\nend", catalog.FunctionOptions{})
			inv := run(t, client, "parent", `{}`)
			checkRefusedAtLine2(t, tc.opts, inv, tc.refused)
		})
	}
}

// TestInvocationChainDepth: a function that invokes itself stops at the
// depth limit, with a Lua error at the call, instead of running until it
// is deleted (16,789 invocations in 40 s before the limit).
func TestInvocationChainDepth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, pool := hostWorker(t, false)
	put(t, client, "again", "function handle(req)\n  return picloud.invoke(\"again\", {})\nend", catalog.FunctionOptions{})
	top := run(t, client, "again", `{}`)
	if top.Status != queue.StatusSucceeded {
		t.Fatalf("the first invocation: %s %q", top.Status, top.Error)
	}
	var maxDepth int
	if err := pool.QueryRow(ctx, `SELECT picloud.max_invocation_depth()`).Scan(&maxDepth); err != nil {
		t.Fatal(err)
	}
	// The chain ends with the invocation at the deepest level, which fails.
	deadline := time.Now().Add(20 * time.Second)
	var last queue.Invocation
	for {
		var id int64
		err := pool.QueryRow(ctx, `SELECT id FROM picloud.invocations WHERE depth = $1`, maxDepth).Scan(&id)
		if err == nil {
			last = waitFor(t, client, id)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no invocation reached depth %d: %v", maxDepth, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if last.Status != queue.StatusFailed || !strings.Contains(last.Error, "invocation chain too deep") || !strings.Contains(last.Error, ":2:") {
		t.Errorf("the deepest invocation: %s %q, want a failure at line 2 naming the depth", last.Status, last.Error)
	}
	var n, deepest int
	if err := pool.QueryRow(ctx, `SELECT count(*), max(depth) FROM picloud.invocations WHERE function = 'again'`).Scan(&n, &deepest); err != nil {
		t.Fatal(err)
	}
	if n != maxDepth+1 || deepest != maxDepth {
		t.Errorf("%d invocations, deepest at %d; want %d, the deepest at %d", n, deepest, maxDepth+1, maxDepth)
	}

	// The SQL backstop: a child of the deepest invocation is refused there too.
	_, err := pool.Exec(ctx, `SELECT picloud.enqueue_reserved(nextval('picloud.invocations_id_seq'), 'again', '{}', NULL, NULL, $1)`, last.ID)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "PC400" || !strings.Contains(pgErr.Message, "too deep") {
		t.Errorf("a child past the depth limit from SQL: %v, want PC400", err)
	}
}

// TestHostCallsRefuseNUL: values PostgreSQL cannot store (a NUL character)
// are refused at the host call, as a Lua error at its line, rather than at
// the finish after the script ran; "\\u0000" as text is storable.
func TestHostCallsRefuseNUL(t *testing.T) {
	t.Parallel()
	client, _ := hostWorker(t, false)
	put(t, client, "child", echoPayload, catalog.FunctionOptions{})
	for _, tc := range []struct {
		name, call, refused string
	}{
		{"kv key", `kv.set("a\0b", 1)`, "kv key must not contain a NUL"},
		{"kv get key", `kv.get("a\0b")`, "kv key must not contain a NUL"},
		{"kv value", `kv.set("k", {s = "x\0y"})`, "kv value must not contain a NUL"},
		{"kv value key", `kv.set("k", {["a\0"] = 1})`, "kv value must not contain a NUL"},
		{"child payload", `picloud.invoke("child", {s = "\0"})`, "payload must not contain a NUL"},
		{"child idempotency key", `picloud.invoke("child", {}, {idempotency_key = "k\0"})`, "idempotency key must not contain a NUL"},
		{"escaped text is fine", `kv.set("k", "\\u0000")`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			put(t, client, "nul", "function handle(req)\n  "+tc.call+"\n  return 1\nend", catalog.FunctionOptions{})
			inv := run(t, client, "nul", `{}`)
			checkRefusedAtLine2(t, tc.call, inv, tc.refused)
		})
	}
}

// TestInvokeFromScriptRefusesOversizedArgs: a child's idempotency key over
// 255 characters, or a payload over picloud.max_payload_bytes() as stored,
// is a Lua error at the call, with its line, instead of a refused finish
// that fails the whole run after the script succeeded. A payload of small
// numbers is the case its JSON length cannot show: 1,200,000 of them are
// 2.4 MB of text and about 10 MB as stored.
func TestInvokeFromScriptRefusesOversizedArgs(t *testing.T) {
	client, _ := hostWorker(t, false)
	put(t, client, "child", echoPayload, catalog.FunctionOptions{})
	for _, tc := range []struct {
		name, call, refused string
	}{
		{"key of 255 characters", `picloud.invoke("child", {}, {idempotency_key = string.rep("é", 255)})`, ""},
		{"key of 256 characters", `picloud.invoke("child", {}, {idempotency_key = string.rep("k", 256)})`, "idempotency key has 256 characters, the most is 255"},
		{"payload of 2 MB", `picloud.invoke("child", {s = string.rep("x", 2000000)})`, ""},
		{"payload of 9 MB", `picloud.invoke("child", {s = string.rep("x", 9000000)})`, "as stored, the most is 8388608"},
		{"payload of 1.2 million numbers", `local t = {} for i = 1, 1200000 do t[i] = 1 end picloud.invoke("child", t)`, "as stored, the most is 8388608"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			put(t, client, "big", "function handle(req)\n  "+tc.call+"\n  return 1\nend", catalog.FunctionOptions{Timeout: time.Minute})
			// Seconds under -race on a busy machine: wait longer than run's 20 s.
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			inv, err := client.Wait(ctx, invoke(t, client, queue.InvokeParams{Function: "big", Payload: json.RawMessage(`{}`)}).ID)
			if err != nil {
				t.Fatal(err)
			}
			checkRefusedAtLine2(t, tc.name, inv, tc.refused)
		})
	}
}

// TestUnstorableErrorsAreCleaned: a script's error text with a NUL
// character or invalid UTF-8 is stored with U+FFFD in their place, on the
// last attempt and on each retry. Before, every retry's write was refused
// and the row stayed running until the rescue (timeout plus grace, 20 s an
// attempt), losing the error; the last attempt's error was replaced by the
// database's complaint.
func TestUnstorableErrorsAreCleaned(t *testing.T) {
	client, _ := hostWorker(t, false)
	for _, tc := range []struct {
		name, raise, want string
		attempts          int
	}{
		{"NUL, one attempt", `"boom\0" .. req.attempt`, "boom\uFFFD1", 1},
		{"NUL, retried", `"boom\0" .. req.attempt`, "boom\uFFFD3", 3},
		{"invalid UTF-8, one attempt", `"boom\255" .. req.attempt`, "boom\uFFFD1", 1},
		{"invalid UTF-8, retried", `"boom\255\254" .. req.attempt`, "boom\uFFFD3", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			put(t, client, "raise", "function handle(req)\n  error("+tc.raise+", 0)\nend",
				catalog.FunctionOptions{MaxAttempts: tc.attempts, RetryBackoff: time.Millisecond, Timeout: 30 * time.Second})
			start := time.Now()
			inv := run(t, client, "raise", `{}`)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v: a retry waited for the rescue", took)
			}
			if inv.Status != queue.StatusFailed || inv.Error != tc.want || inv.Attempt != tc.attempts {
				t.Errorf("%s after %d attempts with %q; want failed after %d with %q", inv.Status, inv.Attempt, inv.Error, tc.attempts, tc.want)
			}
			if len(inv.Errors) != tc.attempts {
				t.Fatalf("%d errors recorded, want %d: %+v", len(inv.Errors), tc.attempts, inv.Errors)
			}
			for i, e := range inv.Errors {
				if want := fmt.Sprintf("boom\uFFFD%d", i+1); e.Error != want {
					t.Errorf("attempt %d's error %q, want %q", i+1, e.Error, want)
				}
			}
		})
	}
}

// checkRefusedAtLine2 checks a script's outcome: a success when refused is
// empty, else a failure whose error says refused and names line 2, where
// the scripts of these tests make the call.
func checkRefusedAtLine2(t *testing.T, call string, inv queue.Invocation, refused string) {
	t.Helper()
	if refused == "" {
		if inv.Status != queue.StatusSucceeded {
			t.Errorf("%s: %s %.300q, want a success", call, inv.Status, inv.Error)
		}
		return
	}
	if inv.Status != queue.StatusFailed || !strings.Contains(inv.Error, refused) || !strings.Contains(inv.Error, ":2:") {
		t.Errorf("%s: %s %.300q, want a failure at line 2 saying %q", call, inv.Status, inv.Error, refused)
	}
}
