package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/picloud/picloud/internal/platformtest"
)

const payloadEcho = `function handle(req) return {trigger = req.trigger, payload = req.payload, attempt = req.attempt} end`

func TestInvokeAPI(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{Concurrency: 2})
	do(t, http.MethodPut, p.URL+"/v1/functions/echo", map[string]string{"source": payloadEcho})
	invokeURL := p.URL + "/v1/functions/echo/invocations"

	t.Run("sync answers with the finished invocation", func(t *testing.T) {
		res := do(t, http.MethodPost, invokeURL, map[string]any{"payload": map[string]any{"n": 1}})
		if res.status != http.StatusOK {
			t.Fatalf("%d %s", res.status, res.body)
		}
		inv := res.json(t)
		result, _ := inv["result"].(map[string]any)
		if inv["status"] != "succeeded" || inv["trigger"] != "api" || result["trigger"] != "api" ||
			result["payload"].(map[string]any)["n"] != float64(1) {
			t.Errorf("invocation = %v", inv)
		}
	})

	t.Run("async answers 202 with a Location", func(t *testing.T) {
		res := do(t, http.MethodPost, invokeURL, map[string]any{"payload": "x", "async": true})
		if res.status != http.StatusAccepted {
			t.Fatalf("%d %s", res.status, res.body)
		}
		inv := res.json(t)
		loc := res.header.Get("Location")
		if loc != fmt.Sprintf("/v1/invocations/%v", inv["id"]) {
			t.Errorf("Location = %q for %v", loc, inv["id"])
		}
		done := do(t, http.MethodGet, p.URL+loc+"?wait=10s", nil).json(t)
		if done["status"] != "succeeded" {
			t.Errorf("after wait: %v", done)
		}
	})

	t.Run("idempotency key in header or body", func(t *testing.T) {
		first := do(t, http.MethodPost, invokeURL, map[string]any{"async": true}, "Idempotency-Key", "abc").json(t)
		again := do(t, http.MethodPost, invokeURL, map[string]any{"async": true, "idempotency_key": "abc"}).json(t)
		sync := do(t, http.MethodPost, invokeURL, map[string]any{}, "Idempotency-Key", "abc")
		if first["id"] != again["id"] || sync.json(t)["id"] != first["id"] || first["idempotency_key"] != "abc" {
			t.Errorf("ids %v %v %v", first["id"], again["id"], sync.json(t)["id"])
		}
		if sync.status != http.StatusOK || sync.json(t)["status"] != "succeeded" {
			t.Errorf("sync repeat = %d %s", sync.status, sync.body)
		}
	})

	t.Run("run_at", func(t *testing.T) {
		at := time.Now().Add(300 * time.Millisecond).UTC()
		res := do(t, http.MethodPost, invokeURL, map[string]any{"async": true, "run_at": at.Format(time.RFC3339Nano)})
		inv := res.json(t)
		if res.status != http.StatusAccepted || inv["status"] != "queued" || inv["run_at"] == nil {
			t.Fatalf("%d %v", res.status, inv)
		}
		done := do(t, http.MethodGet, fmt.Sprintf("%s/v1/invocations/%v?wait=10s", p.URL, inv["id"]), nil).json(t)
		started, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(done["started_at"]))
		if done["status"] != "succeeded" || started.Before(at) {
			t.Errorf("scheduled invocation = %v, started %v before run_at %v", done["status"], started, at)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		assertProblem(t, do(t, http.MethodPost, p.URL+"/v1/functions/nope/invocations", map[string]any{}), http.StatusNotFound, `"nope"`)
		assertProblem(t, do(t, http.MethodPost, invokeURL, map[string]any{"run_at": time.Now().Format(time.RFC3339)}), http.StatusUnprocessableEntity, "async")
		assertProblem(t, do(t, http.MethodPost, invokeURL, map[string]any{"timeout_ms": 0, "async": "yes"}), http.StatusUnprocessableEntity, "")
		assertProblem(t, do(t, http.MethodGet, p.URL+"/v1/invocations/1?wait=forever", nil), http.StatusUnprocessableEntity, "")
		assertProblem(t, do(t, http.MethodGet, p.URL+"/v1/invocations/1?wait=10m", nil), http.StatusUnprocessableEntity, "at most")
		// PostgreSQL stores no NUL character: a 422 naming the field, not a 500.
		for body, field := range map[string]string{
			`{"payload": {"s": ["a\u0000b"]}, "async": true}`: "body.payload.s[0]",
			`{"idempotency_key": "a\u0000b", "async": true}`:  "body.idempotency_key",
		} {
			res := do(t, http.MethodPost, invokeURL, body, "Content-Type", "application/json")
			assertProblem(t, res, http.StatusUnprocessableEntity, "validation failed")
			if !strings.Contains(string(res.body), `"location":"`+field+`"`) {
				t.Errorf("the problem does not name %s: %s", field, res.body)
			}
		}
	})
}

func TestFunctionOptionsAPI(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{Concurrency: 2})
	flaky := `function handle(req) if req.attempt < 2 then error("flaky") end return req.attempt end`
	res := do(t, http.MethodPut, p.URL+"/v1/functions/flaky", map[string]any{
		"source": flaky, "max_attempts": 3, "retry_backoff_ms": 10, "timeout_ms": 2000, "max_concurrency": 4,
	})
	fn := res.json(t)
	if res.status != http.StatusCreated || fn["max_attempts"] != float64(3) || fn["retry_backoff_ms"] != float64(10) ||
		fn["timeout_ms"] != float64(2000) || fn["max_concurrency"] != float64(4) {
		t.Fatalf("%d %v", res.status, fn)
	}
	async := do(t, http.MethodPost, p.URL+"/v1/functions/flaky/invocations", map[string]any{"async": true}).json(t)
	done := do(t, http.MethodGet, fmt.Sprintf("%s/v1/invocations/%v?wait=10s", p.URL, async["id"]), nil).json(t)
	errs, _ := done["errors"].([]any)
	if done["status"] != "succeeded" || done["attempt"] != float64(2) || len(errs) != 1 || done["timeout_ms"] != float64(2000) {
		t.Errorf("async invocation with retries = %v", done)
	}
	sync := do(t, http.MethodPost, p.URL+"/v1/functions/flaky/invocations", map[string]any{}).json(t)
	if sync["status"] != "failed" || sync["attempt"] != float64(1) {
		t.Errorf("a sync call retried: %v", sync)
	}
	if res := do(t, http.MethodGet, p.URL+"/fn/flaky", nil); res.status != http.StatusInternalServerError {
		t.Errorf("/fn retried: %d %s", res.status, res.body)
	}

	// Options are replaced by the next PUT, without a new version.
	res = do(t, http.MethodPut, p.URL+"/v1/functions/flaky", map[string]any{"source": flaky})
	fn = res.json(t)
	if fn["version"] != float64(1) || fn["max_attempts"] != float64(1) || fn["max_concurrency"] != nil || fn["retry_backoff_ms"] != float64(1000) {
		t.Errorf("after a PUT without options: %v", fn)
	}
	for _, bad := range []map[string]any{
		{"source": flaky, "max_attempts": 0},
		{"source": flaky, "max_attempts": 101},
		{"source": flaky, "timeout_ms": 900001},
		{"source": flaky, "max_concurrency": -1},
		{"source": flaky, "retry_backoff_ms": -1},
		{"source": flaky, "max_instructions": 10},
	} {
		assertProblem(t, do(t, http.MethodPut, p.URL+"/v1/functions/flaky", bad), http.StatusUnprocessableEntity, "")
	}
}

func TestListAndCancelAPI(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{Concurrency: 1})
	do(t, http.MethodPut, p.URL+"/v1/functions/a", map[string]string{"source": payloadEcho})
	do(t, http.MethodPut, p.URL+"/v1/functions/b", map[string]string{"source": payloadEcho})
	for range 3 {
		do(t, http.MethodPost, p.URL+"/v1/functions/a/invocations", map[string]any{})
		do(t, http.MethodPost, p.URL+"/v1/functions/b/invocations", map[string]any{})
	}

	t.Run("pages newest first", func(t *testing.T) {
		var ids []float64
		next := p.URL + "/v1/invocations?limit=4"
		for pages := 0; next != ""; pages++ {
			if pages > 3 {
				t.Fatal("too many pages")
			}
			res := do(t, http.MethodGet, next, nil)
			body := res.json(t)
			for _, inv := range body["invocations"].([]any) {
				ids = append(ids, inv.(map[string]any)["id"].(float64))
			}
			next = ""
			if link := res.header.Get("Link"); link != "" {
				if !strings.HasSuffix(link, `>; rel="next"`) || body["next_cursor"] == nil {
					t.Fatalf("Link = %q, next_cursor %v", link, body["next_cursor"])
				}
				next = p.URL + strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
			}
		}
		if len(ids) != 6 {
			t.Fatalf("listed %v, want 6 invocations", ids)
		}
		for i := 1; i < len(ids); i++ {
			if ids[i] >= ids[i-1] {
				t.Errorf("not newest first: %v", ids)
			}
		}
	})

	t.Run("filters", func(t *testing.T) {
		body := do(t, http.MethodGet, p.URL+"/v1/invocations?function=b&status=succeeded", nil).json(t)
		invs := body["invocations"].([]any)
		for _, inv := range invs {
			if m := inv.(map[string]any); m["function"] != "b" || m["status"] != "succeeded" {
				t.Errorf("filtered list has %v", m)
			}
		}
		if len(invs) != 3 {
			t.Errorf("%d invocations of b, want 3", len(invs))
		}
		assertProblem(t, do(t, http.MethodGet, p.URL+"/v1/invocations?status=weird", nil), http.StatusUnprocessableEntity, "")
		assertProblem(t, do(t, http.MethodGet, p.URL+"/v1/invocations?cursor=xyz", nil), http.StatusUnprocessableEntity, "cursor")
	})

	t.Run("cancel", func(t *testing.T) {
		at := time.Now().Add(time.Hour).Format(time.RFC3339)
		queued := do(t, http.MethodPost, p.URL+"/v1/functions/a/invocations", map[string]any{"async": true, "run_at": at}).json(t)
		res := do(t, http.MethodPost, fmt.Sprintf("%s/v1/invocations/%v/cancel", p.URL, queued["id"]), nil)
		if res.status != http.StatusOK || res.json(t)["status"] != "cancelled" {
			t.Fatalf("cancel: %d %s", res.status, res.body)
		}
		if again := do(t, http.MethodPost, fmt.Sprintf("%s/v1/invocations/%v/cancel", p.URL, queued["id"]), nil); again.status != http.StatusOK {
			t.Errorf("a repeated cancel: %d %s, want 200 (cancel is idempotent)", again.status, again.body)
		}
		done := do(t, http.MethodPost, p.URL+"/v1/functions/a/invocations", map[string]any{}).json(t)
		assertProblem(t, do(t, http.MethodPost, fmt.Sprintf("%s/v1/invocations/%v/cancel", p.URL, done["id"]), nil), http.StatusConflict, "succeeded")
		assertProblem(t, do(t, http.MethodPost, p.URL+"/v1/invocations/999999/cancel", nil), http.StatusNotFound, "999999")
	})
}

func TestEnvAPI(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{Concurrency: 1})
	do(t, http.MethodPut, p.URL+"/v1/functions/cfg", map[string]any{
		"source": `function handle(req) print(secrets.TOKEN) return {region = env.REGION, token = #secrets.TOKEN} end`, "http_allow": []string{"api.example.com", "*.example.org:8443"},
	})
	for _, step := range []struct {
		method, path string
		body         any
		status       int
	}{
		{http.MethodPut, "/v1/functions/cfg/env/REGION", map[string]string{"value": "eu"}, http.StatusNoContent},
		{http.MethodPut, "/v1/functions/cfg/secrets/TOKEN", map[string]string{"value": "tok-secret-value"}, http.StatusNoContent},
		{http.MethodPut, "/v1/functions/cfg/env/bad-name", map[string]string{"value": "x"}, http.StatusUnprocessableEntity},
		{http.MethodPut, "/v1/functions/nope/env/X", map[string]string{"value": "x"}, http.StatusNotFound},
		{http.MethodDelete, "/v1/functions/cfg/env/MISSING", nil, http.StatusNotFound},
	} {
		if res := do(t, step.method, p.URL+step.path, step.body); res.status != step.status {
			t.Errorf("%s %s: %d %s, want %d", step.method, step.path, res.status, res.body, step.status)
		}
	}
	env := do(t, http.MethodGet, p.URL+"/v1/functions/cfg/env", nil)
	if strings.Contains(string(env.body), "tok-secret-value") || !strings.Contains(string(env.body), `"secrets":["TOKEN"]`) || !strings.Contains(string(env.body), `"REGION":"eu"`) {
		t.Errorf("GET env = %s", env.body)
	}
	inv := do(t, http.MethodPost, p.URL+"/v1/functions/cfg/invocations", map[string]any{})
	if strings.Contains(string(inv.body), "tok-secret-value") || inv.json(t)["status"] != "succeeded" {
		t.Errorf("invocation leaks the secret or failed: %s", inv.body)
	}
	fn := do(t, http.MethodGet, p.URL+"/v1/functions/cfg", nil).json(t)
	if allow, _ := fn["http_allow"].([]any); len(allow) != 2 {
		t.Errorf("http_allow = %v", fn["http_allow"])
	}
	assertProblem(t, do(t, http.MethodPut, p.URL+"/v1/functions/cfg", map[string]any{"source": "function handle() end", "http_allow": []string{"http://x"}}), http.StatusUnprocessableEntity, "http_allow")
	if res := do(t, http.MethodDelete, p.URL+"/v1/functions/cfg/secrets/TOKEN", nil); res.status != http.StatusNoContent {
		t.Errorf("delete secret: %d", res.status)
	}
}

func TestSchedulesAPI(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{Concurrency: 1})
	do(t, http.MethodPut, p.URL+"/v1/functions/tick", map[string]string{"source": payloadEcho})
	res := do(t, http.MethodPut, p.URL+"/v1/functions/tick/schedules/often", map[string]any{"cron": "@every 1s", "payload": map[string]int{"n": 7}})
	if res.status != http.StatusCreated || res.json(t)["next_run_at"] == nil || res.json(t)["timezone"] != "UTC" {
		t.Fatalf("%d %s", res.status, res.body)
	}
	// The first tick runs within two seconds, through the API's wait.
	deadline := time.Now().Add(10 * time.Second)
	for {
		list := do(t, http.MethodGet, p.URL+"/v1/invocations?function=tick", nil).json(t)
		if invs, _ := list["invocations"].([]any); len(invs) > 0 {
			if inv := invs[0].(map[string]any); inv["trigger"] != "schedule" {
				t.Errorf("trigger = %v", inv["trigger"])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the schedule never fired")
		}
		time.Sleep(100 * time.Millisecond)
	}
	off := do(t, http.MethodPut, p.URL+"/v1/functions/tick/schedules/often", map[string]any{"cron": "@every 1s", "enabled": false})
	if off.status != http.StatusOK || off.json(t)["next_run_at"] != nil {
		t.Errorf("disable: %d %s", off.status, off.body)
	}
	if all := do(t, http.MethodGet, p.URL+"/v1/schedules", nil).json(t); len(all["schedules"].([]any)) != 1 {
		t.Errorf("list = %v", all)
	}
	assertProblem(t, do(t, http.MethodPut, p.URL+"/v1/functions/tick/schedules/bad", map[string]any{"cron": "61 * * * *"}), http.StatusUnprocessableEntity, "cron")
	assertProblem(t, do(t, http.MethodPut, p.URL+"/v1/functions/tick/schedules/bad", map[string]any{"cron": "@hourly", "timezone": "Nowhere/Land"}), http.StatusUnprocessableEntity, "time zone")
	assertProblem(t, do(t, http.MethodPut, p.URL+"/v1/functions/nope/schedules/x", map[string]any{"cron": "@hourly"}), http.StatusNotFound, "nope")
	if res := do(t, http.MethodDelete, p.URL+"/v1/functions/tick/schedules/often", nil); res.status != http.StatusNoContent {
		t.Errorf("delete: %d", res.status)
	}
	assertProblem(t, do(t, http.MethodDelete, p.URL+"/v1/functions/tick/schedules/often", nil), http.StatusNotFound, "often")
}
