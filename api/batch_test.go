package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/picloud/picloud/api"
	"github.com/picloud/picloud/internal/platformtest"
)

func TestInvokeBatchAPI(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{Concurrency: 2})
	do(t, http.MethodPut, p.URL+"/v1/functions/echo", map[string]string{"source": payloadEcho})
	batchURL := p.URL + "/v1/functions/echo/invocations:batch"
	invocations := func(t *testing.T, res response) []map[string]any {
		t.Helper()
		if res.status != http.StatusAccepted {
			t.Fatalf("%d %s", res.status, res.body)
		}
		list, _ := res.json(t)["invocations"].([]any)
		out := make([]map[string]any, len(list))
		for i, e := range list {
			out[i], _ = e.(map[string]any)
		}
		return out
	}
	wait := func(t *testing.T, id any) map[string]any {
		t.Helper()
		return do(t, http.MethodGet, fmt.Sprintf("%s/v1/invocations/%v?wait=10s", p.URL, id), nil).json(t)
	}

	t.Run("answers 202 with ids in order, and each runs its payload", func(t *testing.T) {
		items := make([]map[string]any, 20)
		for i := range items {
			items[i] = map[string]any{"payload": map[string]any{"i": i}}
		}
		items[3] = map[string]any{} // no payload: {}
		got := invocations(t, do(t, http.MethodPost, batchURL, map[string]any{"invocations": items}))
		if len(got) != len(items) {
			t.Fatalf("%d invocations for %d items", len(got), len(items))
		}
		for i, inv := range got {
			if inv["status"] != "queued" {
				t.Errorf("item %d: %v", i, inv)
			}
			if i > 0 && inv["id"].(float64) <= got[i-1]["id"].(float64) {
				t.Errorf("ids %v then %v: not in item order", got[i-1]["id"], inv["id"])
			}
		}
		for i, inv := range got {
			done := wait(t, inv["id"])
			result, _ := done["result"].(map[string]any)
			payload, _ := result["payload"].(map[string]any)
			want := map[string]any{"i": float64(i)}
			if i == 3 {
				want = map[string]any{}
			}
			if done["status"] != "succeeded" || done["trigger"] != "api" || fmt.Sprint(payload) != fmt.Sprint(want) {
				t.Errorf("item %d: %v %v, result %v", i, done["status"], done["trigger"], result)
			}
		}
	})

	t.Run("idempotency keys and run_at per item", func(t *testing.T) {
		first := do(t, http.MethodPost, p.URL+"/v1/functions/echo/invocations", map[string]any{"idempotency_key": "batch-seen"}).json(t)
		later := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
		got := invocations(t, do(t, http.MethodPost, batchURL, map[string]any{"invocations": []map[string]any{
			{"idempotency_key": "batch-seen"},
			{"idempotency_key": "batch-new", "payload": 1},
			{"idempotency_key": "batch-new", "payload": 2},
			{"run_at": later.Format(time.RFC3339Nano)},
		}}))
		if got[0]["id"] != first["id"] || got[0]["status"] != "succeeded" {
			t.Errorf("a key seen before = %v, want invocation %v, succeeded", got[0], first["id"])
		}
		if got[1]["id"] != got[2]["id"] || got[1]["id"] == first["id"] {
			t.Errorf("one key twice in a batch = %v and %v, want one new invocation", got[1], got[2])
		}
		scheduled := do(t, http.MethodGet, fmt.Sprintf("%s/v1/invocations/%v", p.URL, got[3]["id"]), nil).json(t)
		if runAt, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(scheduled["run_at"])); scheduled["status"] != "queued" || !runAt.Equal(later) {
			t.Errorf("item with run_at = %v run_at %v, want queued until %v", scheduled["status"], scheduled["run_at"], later)
		}
		// The same batch again: every item finds its invocation.
		again := invocations(t, do(t, http.MethodPost, batchURL, map[string]any{"invocations": []map[string]any{
			{"idempotency_key": "batch-new"}, {"idempotency_key": "batch-seen"},
		}}))
		if again[0]["id"] != got[1]["id"] || again[1]["id"] != first["id"] {
			t.Errorf("repeated keys = %v, want %v and %v", again, got[1]["id"], first["id"])
		}
	})

	t.Run("bad input is problem+json, never a 500", func(t *testing.T) {
		tooMany := make([]map[string]any, api.MaxBatchInvocations+1)
		for i := range tooMany {
			tooMany[i] = map[string]any{}
		}
		big := `{"invocations": [{"payload": "` + strings.Repeat("x", api.MaxBatchBodyBytes) + `"}]}`
		for _, tc := range []struct {
			name   string
			url    string
			body   any
			status int
			detail string
			field  string
		}{
			{"unknown function", p.URL + "/v1/functions/nope/invocations:batch", map[string]any{"invocations": []any{map[string]any{}}}, http.StatusNotFound, `"nope"`, ""},
			{"bad function name", p.URL + "/v1/functions/No!/invocations:batch", map[string]any{"invocations": []any{map[string]any{}}}, http.StatusUnprocessableEntity, "", "path.name"},
			{"empty list", batchURL, map[string]any{"invocations": []any{}}, http.StatusUnprocessableEntity, "", "body.invocations"},
			{"no list", batchURL, map[string]any{}, http.StatusUnprocessableEntity, "", "body"},
			{"too many items", batchURL, map[string]any{"invocations": tooMany}, http.StatusUnprocessableEntity, "", "body.invocations"},
			{"too large", batchURL, big, http.StatusRequestEntityTooLarge, "", ""},
			{"not a time", batchURL, map[string]any{"invocations": []any{map[string]any{"run_at": "tomorrow"}}}, http.StatusUnprocessableEntity, "", "body.invocations[0].run_at"},
			{"key too long", batchURL, map[string]any{"invocations": []any{map[string]any{"idempotency_key": strings.Repeat("k", 256)}}}, http.StatusUnprocessableEntity, "", "body.invocations[0].idempotency_key"},
			{"NUL in a payload string", batchURL, `{"invocations": [{}, {"payload": {"a": [1, {"s": "x\u0000y"}]}}]}`, http.StatusUnprocessableEntity, "", "body.invocations[1].payload.a[1].s"},
			{"NUL in a payload key", batchURL, `{"invocations": [{"payload": {"k\u0000": 1}}]}`, http.StatusUnprocessableEntity, "", "body.invocations[0].payload"},
			{"NUL in a key", batchURL, `{"invocations": [{"idempotency_key": "a\u0000b"}]}`, http.StatusUnprocessableEntity, "", "body.invocations[0].idempotency_key"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res := do(t, http.MethodPost, tc.url, tc.body, "Content-Type", "application/json")
				assertProblem(t, res, tc.status, tc.detail)
				if tc.field != "" && !strings.Contains(string(res.body), `"location":"`+tc.field) {
					t.Errorf("the problem does not name %s: %s", tc.field, res.body)
				}
			})
		}
	})
}
