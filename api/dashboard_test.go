package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/picloud/picloud/internal/platformtest"
)

// The operations the dashboard added: a check of a function without
// storing it, for compile errors as the user types; function versions; and
// counts for the overview.

func TestValidateFunction(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{})
	url := p.URL + "/v1/functions/hello/validate"
	src := "function handle(req)\n  return \"v1\"\nend\n"

	res := do(t, http.MethodPost, url, map[string]any{"source": src, "timeout_ms": 2000})
	if fn := res.json(t); res.status != http.StatusOK || fn["version"] != float64(1) || fn["timeout_ms"] != float64(2000) || fn["max_attempts"] != float64(1) {
		t.Errorf("validate a new function: %d %s", res.status, res.body)
	}
	assertProblem(t, do(t, http.MethodGet, p.URL+"/v1/functions/hello", nil), http.StatusNotFound, "does not exist")

	// A syntax error reads as the PUT's: an editor shows what a save would say.
	broken := map[string]any{"source": "function handle(req)\n  return (\nend\n"}
	res = do(t, http.MethodPost, url, broken)
	assertProblem(t, res, http.StatusUnprocessableEntity, "the source does not compile")
	if put := do(t, http.MethodPut, p.URL+"/v1/functions/hello", broken); string(put.body) != string(res.body) {
		t.Errorf("validate answered\n%s\nbut PUT answers\n%s", res.body, put.body)
	}
	if errs, _ := res.json(t)["errors"].([]any); len(errs) != 1 || errs[0].(map[string]any)["value"] != float64(3) ||
		!strings.HasPrefix(errs[0].(map[string]any)["message"].(string), "line 3: ") {
		t.Errorf("the 422 does not carry the line in errors[0].value and its message: %s", res.body)
	}
	assertProblem(t, do(t, http.MethodPost, url, map[string]any{"source": src, "http_allow": []string{"bad host!"}}),
		http.StatusUnprocessableEntity, "http_allow")

	if res := do(t, http.MethodPut, p.URL+"/v1/functions/hello", map[string]any{"source": src}); res.status != http.StatusCreated {
		t.Fatalf("put: %d %s", res.status, res.body)
	}
	for source, version := range map[string]float64{src: 1, strings.Replace(src, "v1", "v2", 1): 2} {
		res := do(t, http.MethodPost, url, map[string]any{"source": source})
		if fn := res.json(t); res.status != http.StatusOK || fn["version"] != version {
			t.Errorf("validate an existing function: %d version %v, want %v", res.status, fn["version"], version)
		}
	}
	if fn := do(t, http.MethodGet, p.URL+"/v1/functions/hello", nil).json(t); fn["version"] != float64(1) {
		t.Errorf("validating changed the function: version %v", fn["version"])
	}
}

func TestFunctionVersions(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{})
	sources := []string{
		"function handle(req) return 1 end\n",
		"function handle(req) return 2 end\n",
		"function handle(req) return 3 end\n",
	}
	for _, src := range append(sources, sources[2]) { // the repeat adds no version
		if res := do(t, http.MethodPut, p.URL+"/v1/functions/calc", map[string]any{"source": src}); res.status >= 300 {
			t.Fatalf("put: %d %s", res.status, res.body)
		}
	}
	res := do(t, http.MethodGet, p.URL+"/v1/functions/calc/versions", nil)
	if res.status != http.StatusOK {
		t.Fatalf("list versions: %d %s", res.status, res.body)
	}
	versions, _ := res.json(t)["versions"].([]any)
	if len(versions) != 3 {
		t.Fatalf("got %d versions, want 3: %s", len(versions), res.body)
	}
	for i, v := range versions {
		v := v.(map[string]any)
		if v["version"] != float64(3-i) || v["source"] != nil || v["source_bytes"] != float64(len(sources[2-i])) {
			t.Errorf("versions[%d] = %v, want version %d without its source", i, v, 3-i)
		}
	}
	res = do(t, http.MethodGet, p.URL+"/v1/functions/calc/versions/2", nil)
	if v := res.json(t); res.status != http.StatusOK || v["source"] != sources[1] {
		t.Errorf("version 2: %d %s", res.status, res.body)
	}
	assertProblem(t, do(t, http.MethodGet, p.URL+"/v1/functions/calc/versions/9", nil), http.StatusNotFound, "no version 9")
	assertProblem(t, do(t, http.MethodGet, p.URL+"/v1/functions/nope/versions", nil), http.StatusNotFound, "does not exist")
	assertProblem(t, do(t, http.MethodGet, p.URL+"/v1/functions/nope/versions/1", nil), http.StatusNotFound, "does not exist")
}

func TestStats(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{})
	deploy(t, p.URL, "hello", "hello.lua")
	deploy(t, p.URL, "error", "error.lua")
	deploy(t, p.URL, "idle", "hello.lua")
	for range 3 {
		do(t, http.MethodGet, p.URL+"/fn/hello", nil)
	}
	do(t, http.MethodGet, p.URL+"/fn/error", nil)
	// One finished long ago, outside any window asked for below.
	old := do(t, http.MethodGet, p.URL+"/fn/hello", nil)
	if _, err := p.Pool.Exec(context.Background(),
		`UPDATE picloud.invocations SET finished_at = finished_at - interval '3 hours' WHERE id = $1`,
		old.header.Get("X-Invocation-Id")); err != nil {
		t.Fatal(err)
	}

	res := do(t, http.MethodGet, p.URL+"/v1/stats", nil)
	if res.status != http.StatusOK {
		t.Fatalf("stats: %d %s", res.status, res.body)
	}
	st := res.json(t)
	if st["window"] != "1h" || st["bucket_seconds"] != float64(60) {
		t.Errorf("window %v, bucket %v; want 1h in minutes", st["window"], st["bucket_seconds"])
	}
	buckets, _ := st["buckets"].([]any)
	if len(buckets) != 60 {
		t.Fatalf("%d buckets, want 60", len(buckets))
	}
	since, _ := time.Parse(time.RFC3339Nano, st["since"].(string))
	until, _ := time.Parse(time.RFC3339Nano, st["until"].(string))
	if until.Sub(since) != time.Hour || time.Now().Before(until.Add(-time.Minute)) || time.Now().After(until) {
		t.Errorf("since %v until %v: want the hour up to the minute after now", since, until)
	}
	last := buckets[len(buckets)-1].(map[string]any)
	if last["succeeded"] != float64(3) || last["failed"] != float64(1) {
		t.Errorf("last bucket %v, want 3 succeeded and 1 failed", last)
	}
	if totals := st["totals"].(map[string]any); totals["succeeded"] != float64(3) || totals["failed"] != float64(1) || totals["timed_out"] != float64(0) {
		t.Errorf("totals %v", totals)
	}
	fns, _ := st["functions"].([]any)
	if len(fns) != 3 {
		t.Fatalf("functions %v, want all three", fns)
	}
	byName := map[string]map[string]any{}
	for _, f := range fns {
		f := f.(map[string]any)
		byName[f["function"].(string)] = f
	}
	if h := byName["hello"]; h["succeeded"] != float64(3) || h["last_invocation"].(map[string]any)["id"] != mustFloat(t, old.header.Get("X-Invocation-Id")) {
		t.Errorf("hello: %v; want 3 in the window and the old invocation as its newest", h)
	}
	if e := byName["error"]; e["failed"] != float64(1) || e["last_invocation"].(map[string]any)["status"] != "failed" {
		t.Errorf("error: %v", e)
	}
	if i := byName["idle"]; i["last_invocation"] != nil || i["succeeded"] != float64(0) {
		t.Errorf("idle: %v; want no invocation", i)
	}

	res = do(t, http.MethodGet, p.URL+"/v1/stats?window=6h&bucket=1h", nil)
	if st := res.json(t); res.status != http.StatusOK || len(st["buckets"].([]any)) != 6 || st["totals"].(map[string]any)["succeeded"] != float64(4) {
		t.Errorf("6h by the hour: %d %s", res.status, res.body)
	}
	assertProblem(t, do(t, http.MethodGet, p.URL+"/v1/stats?window=1000h", nil), http.StatusUnprocessableEntity, "window")
	assertProblem(t, do(t, http.MethodGet, p.URL+"/v1/stats?window=1h&bucket=2h", nil), http.StatusUnprocessableEntity, "bucket")
	assertProblem(t, do(t, http.MethodGet, p.URL+"/v1/stats?window=168h&bucket=1m", nil), http.StatusUnprocessableEntity, "1440")
}

func mustFloat(t *testing.T, s string) float64 {
	t.Helper()
	var f float64
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("not a number: %q", s)
		}
		f = f*10 + float64(c-'0')
	}
	return f
}
