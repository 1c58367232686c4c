package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/picloud/picloud/internal/platformtest"
)

// TestResponseStatus: a function answers with a final HTTP status, 200 to
// 599, or its invocation fails with an error that says why; never an
// interim 1xx, and never a table silently turned into a 200 JSON body.
func TestResponseStatus(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{Concurrency: 2})
	for _, tc := range []struct {
		name   string
		status string // the Lua expression
		want   int    // the /fn status; 500 means the invocation failed
		body   string
	}{
		{"200", `200`, 200, "x"},
		{"299", `299`, 299, "x"},
		{"numeric string", `"201"`, 201, "x"},
		{"100 continue", `100`, 500, "response status 100"},
		{"101 switching protocols", `101`, 500, "response status 101"},
		{"103 early hints", `103`, 500, "response status 103"},
		{"199", `199`, 500, "response status 199"},
		{"600", `600`, 500, "response status 600"},
		{"999", `999`, 500, "response status 999"},
		{"0", `0`, 500, "response status 0"},
		{"negative", `-1`, 500, "response status -1"},
		{"fraction", `200.5`, 500, "response status 200.5"},
		{"fractional string", `"200.5"`, 500, `response status \"200.5\"`},
		{"1xx string", `"101"`, 500, `response status \"101\"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "status-" + strings.NewReplacer(" ", "-", ".", "-").Replace(tc.name)
			source := `function handle(req) return {status = ` + tc.status + `, body = "x"} end`
			if res := do(t, http.MethodPut, p.URL+"/v1/functions/"+name, map[string]string{"source": source}); res.status != http.StatusCreated {
				t.Fatalf("deploy: %d %s", res.status, res.body)
			}
			res := do(t, http.MethodGet, p.URL+"/fn/"+name, nil)
			if tc.want != http.StatusInternalServerError {
				if res.status != tc.want || string(res.body) != tc.body {
					t.Fatalf("got %d %q, want %d %q", res.status, res.body, tc.want, tc.body)
				}
				return
			}
			assertProblem(t, res, http.StatusInternalServerError, "is not an HTTP status a function may answer")
			if !strings.Contains(string(res.body), tc.body) {
				t.Errorf("the problem does not quote the status (%s): %s", tc.body, res.body)
			}
			if inv := invocation(t, p.URL, res); inv["status"] != "failed" {
				t.Errorf("invocation status = %v, want failed: %v", inv["status"], inv)
			}
			// The same through the API: a failed invocation, not a 200.
			api := do(t, http.MethodPost, p.URL+"/v1/functions/"+name+"/invocations", map[string]any{})
			if inv := api.json(t); api.status != http.StatusOK || inv["status"] != "failed" {
				t.Errorf("API call = %d %v, want 200 with a failed invocation", api.status, inv)
			}
		})
	}
}
