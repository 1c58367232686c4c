package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/picloud/picloud/internal/platformtest"
)

// TestSourceProblems: a source every invocation would fail on is refused by
// PUT and by validate alike, with one message saying what is wrong, and
// nothing is stored.
func TestSourceProblems(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{Concurrency: 1})
	for _, tc := range []struct {
		name, source string
		detail       string // the problem's detail
		message      string // errors[0].message at body.source
		line         float64
	}{
		{"syntax error", "function handle(req)\n  return 1 +\nend", "the source does not compile", "line 3: unexpected symbol near 'end'", 3},
		{"no handle", "function handler(req) return 1 end", "the source does not define handle",
			"the source does not define handle: every invocation calls a global function handle(req); define it with function handle(req) ... end", 0},
		{"handle only in a comment", "-- function handle(req) end\nlocal x = 1", "the source does not define handle", "", 0},
		{"empty", "", "the source does not define handle", "", 0},
	} {
		for _, op := range []struct{ method, path string }{
			{http.MethodPut, "/v1/functions/f"},
			{http.MethodPost, "/v1/functions/f/validate"},
		} {
			t.Run(tc.name+" "+op.method, func(t *testing.T) {
				res := do(t, op.method, p.URL+op.path, map[string]string{"source": tc.source})
				assertProblem(t, res, http.StatusUnprocessableEntity, tc.detail)
				problem := res.json(t)
				if problem["detail"] != tc.detail {
					t.Errorf("detail %q, want %q", problem["detail"], tc.detail)
				}
				errs, _ := problem["errors"].([]any)
				if len(errs) != 1 {
					t.Fatalf("errors %v, want one at body.source", problem["errors"])
				}
				e := errs[0].(map[string]any)
				if e["location"] != "body.source" {
					t.Errorf("location %v, want body.source", e["location"])
				}
				if tc.message != "" && e["message"] != tc.message {
					t.Errorf("message %q, want %q", e["message"], tc.message)
				}
				if tc.line != 0 && e["value"] != tc.line {
					t.Errorf("value %v, want the line %v", e["value"], tc.line)
				}
				// Said once: the message does not repeat the detail, nor
				// the detail the message.
				msg, _ := e["message"].(string)
				if strings.Count(string(res.body), msg) != 1 || strings.Contains(msg, tc.detail+":") && tc.line != 0 {
					t.Errorf("the problem repeats itself: %s", res.body)
				}
			})
		}
	}
	if res := do(t, http.MethodGet, p.URL+"/v1/functions/f", nil); res.status != http.StatusNotFound {
		t.Errorf("a refused source was stored: GET answered %d %s", res.status, res.body)
	}
}
