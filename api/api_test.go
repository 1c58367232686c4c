package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/picloud/picloud/api"
	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/internal/dbtest"
	"github.com/picloud/picloud/internal/platformtest"
	"github.com/picloud/picloud/queue"
)

func TestMain(m *testing.M) {
	executor.RunSandboxIfChild() // platformtest's process sandboxes are this binary
	os.Exit(dbtest.Main(m))
}

// response is what a test reads back from the server.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, r.body)
	}
	return v
}

func do(t testing.TB, method, url string, body any, header ...string) response {
	t.Helper()
	var reader io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		reader = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := body.(string); !ok && body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	res.Body = io.NopCloser(bytes.NewReader(data))
	checkAgainstSpec(t, req, res)
	return response{status: res.StatusCode, header: res.Header, body: data}
}

func deploy(t *testing.T, baseURL, name, file string) map[string]any {
	t.Helper()
	source, err := os.ReadFile("../testdata/functions/" + file)
	if err != nil {
		t.Fatal(err)
	}
	res := do(t, http.MethodPut, baseURL+"/v1/functions/"+name, map[string]string{"source": string(source)})
	if res.status != http.StatusCreated && res.status != http.StatusOK {
		t.Fatalf("deploy %s: %d %s", name, res.status, res.body)
	}
	return res.json(t)
}

// invocation fetches the row behind a /fn response.
func invocation(t *testing.T, baseURL string, res response) map[string]any {
	t.Helper()
	id := res.header.Get("X-Invocation-Id")
	if _, err := strconv.ParseInt(id, 10, 64); err != nil {
		t.Fatalf("X-Invocation-Id = %q, want an integer (status %d, body %s)", id, res.status, res.body)
	}
	got := do(t, http.MethodGet, baseURL+"/v1/invocations/"+id, nil)
	if got.status != http.StatusOK {
		t.Fatalf("GET invocation %s: %d %s", id, got.status, got.body)
	}
	return got.json(t)
}

func assertProblem(t *testing.T, res response, status int, detailContains string) {
	t.Helper()
	if res.status != status {
		t.Fatalf("status = %d, want %d; body %s", res.status, status, res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	p := res.json(t)
	if p["status"] != float64(status) {
		t.Errorf("problem status = %v, want %d", p["status"], status)
	}
	if detail, _ := p["detail"].(string); !strings.Contains(detail, detailContains) {
		t.Errorf("problem detail = %q, want it to contain %q", detail, detailContains)
	}
}

func logMessages(inv map[string]any) []string {
	var msgs []string
	logs, _ := inv["logs"].([]any)
	for _, l := range logs {
		if m, ok := l.(map[string]any); ok {
			msgs = append(msgs, fmt.Sprint(m["message"]))
		}
	}
	return msgs
}

// TestEndToEnd walks the path of the README: deploy the example functions,
// call them over HTTP, and read their invocation rows.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{Concurrency: 2})
	for name, file := range map[string]string{"hello": "hello.lua", "echo": "echo.lua", "error": "error.lua", "loop": "loop.lua"} {
		fn := deploy(t, p.URL, name, file)
		if fn["version"] != float64(1) || fn["url"] != "/fn/"+name {
			t.Fatalf("deployed %s = %v", name, fn)
		}
	}

	t.Run("hello", func(t *testing.T) {
		res := do(t, http.MethodGet, p.URL+"/fn/hello?name=Ada", nil)
		if res.status != http.StatusOK || string(res.body) != "Hello, Ada!" {
			t.Fatalf("got %d %q, want 200 %q", res.status, res.body, "Hello, Ada!")
		}
		if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("Content-Type = %q, want text/plain", ct)
		}
		inv := invocation(t, p.URL, res)
		for key, want := range map[string]any{"function": "hello", "status": "succeeded", "trigger": "http", "attempt": float64(1)} {
			if inv[key] != want {
				t.Errorf("invocation %s = %v, want %v", key, inv[key], want)
			}
		}
		for _, key := range []string{"created_at", "started_at", "finished_at", "wait_ms", "run_ms"} {
			if inv[key] == nil {
				t.Errorf("invocation has no %s: %v", key, inv)
			}
		}
		result, _ := inv["result"].(map[string]any)
		if result["status"] != float64(200) || result["body"] != "Hello, Ada!" {
			t.Errorf("invocation result = %v", inv["result"])
		}
		if req, _ := inv["request"].(map[string]any); req["method"] != "GET" || req["path"] != "/" {
			t.Errorf("invocation request = %v", inv["request"])
		}
		if len(logMessages(inv)) == 0 {
			t.Errorf("hello logs nothing; want its log line in the row: %v", inv)
		}
	})

	t.Run("hello default", func(t *testing.T) {
		res := do(t, http.MethodGet, p.URL+"/fn/hello", nil)
		if res.status != http.StatusOK || string(res.body) != "Hello, world!" {
			t.Fatalf("got %d %q", res.status, res.body)
		}
	})

	t.Run("json echo", func(t *testing.T) {
		res := do(t, http.MethodPost, p.URL+"/fn/echo/some/path?x=1", map[string]any{"n": 42, "list": []int{1, 2}})
		if res.status != http.StatusOK {
			t.Fatalf("got %d %s", res.status, res.body)
		}
		if ct := res.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q, want application/json", ct)
		}
		body := res.json(t)
		if body["method"] != "POST" || body["path"] != "/some/path" {
			t.Errorf("echo = %v", body)
		}
		if q, _ := body["query"].(map[string]any); q["x"] != "1" {
			t.Errorf("echo query = %v", body["query"])
		}
		want := map[string]any{"n": float64(42), "list": []any{float64(1), float64(2)}}
		if got, _ := json.Marshal(body["body"]); string(got) != mustJSON(t, want) {
			t.Errorf("echo body = %s, want %s", got, mustJSON(t, want))
		}
	})

	t.Run("runtime error", func(t *testing.T) {
		res := do(t, http.MethodGet, p.URL+"/fn/error", nil)
		assertProblem(t, res, http.StatusInternalServerError, "error:")
		inv := invocation(t, p.URL, res)
		errText, _ := inv["error"].(string)
		if inv["status"] != "failed" || !strings.Contains(errText, "error:") {
			t.Errorf("invocation = status %v error %q, want failed with the Lua line", inv["status"], errText)
		}
		if len(logMessages(inv)) == 0 {
			t.Errorf("logs before the error are lost: %v", inv)
		}
	})

	t.Run("endless loop does not stall others", func(t *testing.T) {
		var wg sync.WaitGroup
		var loop response
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop = do(t, http.MethodGet, p.URL+"/fn/loop", nil)
		}()
		// While the loop burns one sandbox, the other keeps serving.
		time.Sleep(50 * time.Millisecond)
		start := time.Now()
		hello := do(t, http.MethodGet, p.URL+"/fn/hello?name=Bo", nil)
		if hello.status != http.StatusOK || string(hello.body) != "Hello, Bo!" {
			t.Errorf("hello during loop: %d %q", hello.status, hello.body)
		}
		helloTook := time.Since(start)
		wg.Wait()
		assertProblem(t, loop, http.StatusGatewayTimeout, "")
		inv := invocation(t, p.URL, loop)
		if inv["status"] != "timed_out" {
			t.Errorf("loop invocation status = %v, want timed_out", inv["status"])
		}
		if runMS, _ := inv["run_ms"].(float64); time.Duration(runMS)*time.Millisecond < helloTook {
			t.Errorf("hello took %v, longer than the whole loop (%v ms): it waited for the loop", helloTook, runMS)
		}
	})

	t.Run("unknown function", func(t *testing.T) {
		assertProblem(t, do(t, http.MethodGet, p.URL+"/fn/nope", nil), http.StatusNotFound, `"nope"`)
		assertProblem(t, do(t, http.MethodGet, p.URL+"/fn/Not_A_Name", nil), http.StatusNotFound, "")
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestFunctions(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{Concurrency: 1})
	const v1 = "function handle(req) return 'one' end"
	const v2 = "function handle(req) return 'two' end"

	steps := []struct {
		name        string
		method      string
		path        string
		body        any
		wantStatus  int
		wantVersion float64
		wantFnBody  string // response body of /fn/f after the step, if set
	}{
		{"create", http.MethodPut, "/v1/functions/f", map[string]string{"source": v1}, http.StatusCreated, 1, "one"},
		{"same source keeps version", http.MethodPut, "/v1/functions/f", map[string]string{"source": v1}, http.StatusOK, 1, "one"},
		{"new source bumps version", http.MethodPut, "/v1/functions/f", map[string]string{"source": v2}, http.StatusOK, 2, "two"},
		{"get has source", http.MethodGet, "/v1/functions/f", nil, http.StatusOK, 2, ""},
		{"syntax error names the line", http.MethodPut, "/v1/functions/f", map[string]string{"source": "function handle(req)\n  return 1 +\nend"}, http.StatusUnprocessableEntity, 0, "two"},
		{"bad name", http.MethodPut, "/v1/functions/Bad.Name", map[string]string{"source": v1}, http.StatusUnprocessableEntity, 0, ""},
		{"missing source", http.MethodPut, "/v1/functions/g", map[string]string{}, http.StatusUnprocessableEntity, 0, ""},
		{"get unknown", http.MethodGet, "/v1/functions/nope", nil, http.StatusNotFound, 0, ""},
		{"delete", http.MethodDelete, "/v1/functions/f", nil, http.StatusNoContent, 0, ""},
		{"delete again", http.MethodDelete, "/v1/functions/f", nil, http.StatusNotFound, 0, ""},
		{"recreate starts over", http.MethodPut, "/v1/functions/f", map[string]string{"source": v1}, http.StatusCreated, 1, "one"},
	}
	for _, s := range steps {
		res := do(t, s.method, p.URL+s.path, s.body)
		if res.status != s.wantStatus {
			t.Fatalf("%s: status %d, want %d: %s", s.name, res.status, s.wantStatus, res.body)
		}
		if s.wantStatus >= 400 {
			if ct := res.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("%s: Content-Type %q, want problem+json", s.name, ct)
			}
		}
		if s.wantVersion != 0 {
			if got := res.json(t)["version"]; got != s.wantVersion {
				t.Errorf("%s: version %v, want %v", s.name, got, s.wantVersion)
			}
		}
		if s.name == "get has source" && res.json(t)["source"] != v2 {
			t.Errorf("%s: source = %v", s.name, res.json(t)["source"])
		}
		if s.name == "syntax error names the line" && !strings.Contains(string(res.body), "line 3") {
			t.Errorf("%s: problem does not name line 3: %s", s.name, res.body)
		}
		if s.wantFnBody != "" {
			if got := do(t, http.MethodGet, p.URL+"/fn/f", nil); string(got.body) != s.wantFnBody {
				t.Errorf("%s: /fn/f = %d %q, want %q", s.name, got.status, got.body, s.wantFnBody)
			}
		}
	}

	do(t, http.MethodPut, p.URL+"/v1/functions/a-first", map[string]string{"source": v1})
	list := do(t, http.MethodGet, p.URL+"/v1/functions", nil).json(t)
	fns, _ := list["functions"].([]any)
	if len(fns) != 2 || fns[0].(map[string]any)["name"] != "a-first" || fns[1].(map[string]any)["name"] != "f" {
		t.Errorf("list = %v, want a-first and f in name order", list)
	}
	if _, hasSource := fns[0].(map[string]any)["source"]; hasSource {
		t.Errorf("listing carries sources: %v", fns[0])
	}
}

func TestResponseShapes(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{Concurrency: 1})
	cases := []struct {
		name        string
		source      string
		wantStatus  int
		wantType    string
		wantBody    string
		wantHeaders map[string]string
	}{
		{"string", `function handle(req) return "hi" end`, 200, "text/plain; charset=utf-8", "hi", nil},
		{"table is JSON", `function handle(req) return {ok = true} end`, 200, "application/json", `{"ok":true}`, nil},
		{"nil is 204", `function handle(req) end`, 204, "", "", nil},
		{"response table", `function handle(req) return {status = 201, headers = {["x-a"] = "b"}, body = "made"} end`, 201, "text/plain; charset=utf-8", "made", map[string]string{"X-A": "b"}},
		{"response with table body", `function handle(req) return {status = 202, body = {n = 1}} end`, 202, "application/json", `{"n":1}`, nil},
		{"binary body", `function handle(req) return {headers = {["content-type"] = "application/octet-stream"}, body = "\255\0\1"} end`, 200, "application/octet-stream", "\xff\x00\x01", nil},
		{"NUL in text", `function handle(req) return "a\0b" end`, 200, "text/plain; charset=utf-8", "a\x00b", nil},
		{"request body", `function handle(req) return req.body end`, 200, "text/plain; charset=utf-8", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := strings.ToLower(strings.ReplaceAll(c.name, " ", "-"))
			if res := do(t, http.MethodPut, p.URL+"/v1/functions/"+name, map[string]string{"source": c.source}); res.status != http.StatusCreated {
				t.Fatalf("deploy: %d %s", res.status, res.body)
			}
			res := do(t, http.MethodGet, p.URL+"/fn/"+name, nil)
			if res.status != c.wantStatus || string(res.body) != c.wantBody {
				t.Fatalf("got %d %q, want %d %q", res.status, res.body, c.wantStatus, c.wantBody)
			}
			if got := res.header.Get("Content-Type"); got != c.wantType {
				t.Errorf("Content-Type = %q, want %q", got, c.wantType)
			}
			for k, v := range c.wantHeaders {
				if got := res.header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestHealthAndErrors(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{Concurrency: 1})
	for _, path := range []string{"/healthz", "/readyz"} {
		if res := do(t, http.MethodGet, p.URL+path, nil); res.status != http.StatusOK || res.json(t)["status"] != "ok" {
			t.Errorf("%s: %d %s", path, res.status, res.body)
		}
	}
	assertProblem(t, do(t, http.MethodGet, p.URL+"/no/such/route", nil), http.StatusNotFound, "no route")
	assertProblem(t, do(t, http.MethodGet, p.URL+"/v1/invocations/999999", nil), http.StatusNotFound, "999999")
	assertProblem(t, do(t, http.MethodGet, p.URL+"/v1/invocations/abc", nil), http.StatusUnprocessableEntity, "")

	do(t, http.MethodPut, p.URL+"/v1/functions/echo", map[string]string{"source": `function handle(req) return #req.body end`})
	big := strings.Repeat("x", api.DefaultMaxBodyBytes+1)
	assertProblem(t, do(t, http.MethodPost, p.URL+"/fn/echo", big), http.StatusRequestEntityTooLarge, "exceeds")
}

// TestReadyzWithoutMigrations: a server on an empty database is alive but
// not ready, and says what to do.
func TestReadyzWithoutMigrations(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), dbtest.CreateDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	client, err := queue.NewClient(pool, queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(platformtest.Services(client, catalog.New(pool))))
	defer srv.Close()
	if res := do(t, http.MethodGet, srv.URL+"/healthz", nil); res.status != http.StatusOK {
		t.Errorf("healthz: %d %s", res.status, res.body)
	}
	assertProblem(t, do(t, http.MethodGet, srv.URL+"/readyz", nil), http.StatusServiceUnavailable, "picloud migrate")
}

func TestOpenAPIIsCommitted(t *testing.T) {
	t.Parallel()
	v31, v30, err := api.OpenAPIDocuments()
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string][]byte{"../openapi/openapi.yaml": v31, "../openapi/openapi-3.0.yaml": v30} {
		got, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("%v (run: go run ./cmd/picloud openapi)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale; regenerate it with: go run ./cmd/picloud openapi", file)
		}
	}
	for _, keyword := range []string{"contentMediaType", "const:", "identifier:"} {
		if bytes.Contains(v30, []byte(keyword)) {
			t.Errorf("the 3.0 document still contains the 3.1 keyword %q", keyword)
		}
	}
	if !bytes.Contains(v31, []byte("/fn/{name}")) {
		t.Errorf("the document does not describe the /fn ingress")
	}
}
