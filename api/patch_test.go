package api_test

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/picloud/picloud/internal/platformtest"
)

type patchAnswer struct {
	Version        int      `json:"version"`
	Auth           string   `json:"auth"`
	TimeoutMS      int      `json:"timeout_ms"`
	MaxConcurrency int      `json:"max_concurrency"`
	HTTPAllow      []string `json:"http_allow"`
	ExposeErrors   bool     `json:"expose_errors"`
	Created        bool     `json:"created"`
	Changes        []struct {
		Field, From, To string
	} `json:"changes"`
}

func (a patchAnswer) changed() string {
	var parts []string
	for _, c := range a.Changes {
		parts = append(parts, c.Field+": "+c.From+" -> "+c.To)
	}
	return strings.Join(parts, "; ")
}

// TestPatchFunction: PATCH changes only what it is given, so that
// redeploying the source keeps auth, http_allow, max_concurrency, the
// timeout and the env; it reports what changed, and dry_run stores nothing.
func TestPatchFunction(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options{})
	url := p.URL + "/v1/functions/f"
	v1 := `function handle(req) return "one" end`
	v2 := `function handle(req) return "two" end`
	res := do(t, http.MethodPut, url, map[string]any{"source": v1, "auth": "key", "http_allow": []string{"api.example.com"},
		"max_concurrency": 3, "timeout_ms": 5000})
	if res.status != http.StatusCreated {
		t.Fatalf("PUT: %d %s", res.status, res.body)
	}
	if res := do(t, http.MethodPut, url+"/env/REGION", map[string]string{"value": "eu"}); res.status != http.StatusNoContent {
		t.Fatalf("set env: %d %s", res.status, res.body)
	}

	steps := []struct {
		name    string
		query   string
		body    map[string]any
		status  int
		changed string // the changes, as "field: from -> to; ..."
		check   func(t *testing.T, a patchAnswer)
	}{
		{"source only keeps the options", "", map[string]any{"source": v2}, http.StatusOK, "source: version 1 -> version 2",
			func(t *testing.T, a patchAnswer) {
				if a.Version != 2 || a.Auth != "key" || a.TimeoutMS != 5000 || a.MaxConcurrency != 3 || len(a.HTTPAllow) != 1 {
					t.Errorf("after a source-only patch: %+v", a)
				}
			}},
		{"same source again changes nothing", "", map[string]any{"source": v2}, http.StatusOK, "", nil},
		{"one option changes only it", "", map[string]any{"auth": "public"}, http.StatusOK, "auth: key -> public",
			func(t *testing.T, a patchAnswer) {
				if a.Version != 2 || a.TimeoutMS != 5000 || a.MaxConcurrency != 3 {
					t.Errorf("after auth patch: %+v", a)
				}
			}},
		{"reset", "", map[string]any{"reset": []string{"max_concurrency", "http_allow"}, "expose_errors": true}, http.StatusOK,
			`max_concurrency: 3 -> default; http_allow: ["api.example.com"] -> []; expose_errors: false -> true`, nil},
		{"dry run reports", "?dry_run=true", map[string]any{"source": v1, "timeout_ms": 100}, http.StatusOK,
			"source: version 2 -> version 3; timeout_ms: 5000 -> 100", nil},
		{"dry run stored nothing", "", map[string]any{}, http.StatusOK, "",
			func(t *testing.T, a patchAnswer) {
				if a.Version != 2 || a.TimeoutMS != 5000 {
					t.Errorf("a dry run was stored: %+v", a)
				}
			}},
		{"set and reset", "", map[string]any{"auth": "key", "reset": []string{"auth"}}, http.StatusUnprocessableEntity, "", nil},
		{"bad source", "", map[string]any{"source": "function handle("}, http.StatusUnprocessableEntity, "", nil},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			res := do(t, http.MethodPatch, url+s.query, s.body)
			if res.status != s.status {
				t.Fatalf("status %d, want %d: %s", res.status, s.status, res.body)
			}
			if s.status >= 400 {
				return
			}
			var a patchAnswer
			if err := json.Unmarshal(res.body, &a); err != nil {
				t.Fatal(err)
			}
			if got := a.changed(); got != s.changed {
				t.Errorf("changes %q, want %q", got, s.changed)
			}
			if s.check != nil {
				s.check(t, a)
			}
		})
	}
	env := do(t, http.MethodGet, url+"/env", nil).json(t)
	if values, _ := env["env"].(map[string]any); values["REGION"] != "eu" {
		t.Errorf("env after the patches: %v", env)
	}

	t.Run("create", func(t *testing.T) {
		res := do(t, http.MethodPatch, p.URL+"/v1/functions/g", map[string]any{"source": v1, "max_concurrency": 2})
		if res.status != http.StatusCreated {
			t.Fatalf("status %d: %s", res.status, res.body)
		}
		var a patchAnswer
		_ = json.Unmarshal(res.body, &a)
		if !a.Created || a.changed() != "source:  -> version 1; max_concurrency: default -> 2" {
			t.Errorf("created: %v %q", a.Created, a.changed())
		}
		assertProblem(t, do(t, http.MethodPatch, p.URL+"/v1/functions/nope", map[string]any{"auth": "key"}), http.StatusNotFound, "send a source")
		if res := do(t, http.MethodGet, p.URL+"/v1/functions/nope", nil); res.status != http.StatusNotFound {
			t.Errorf("a refused patch left a function: %d %s", res.status, res.body)
		}
	})
}

// TestFunctionErrorExposure: an anonymous caller of a public function gets
// a generic 500 naming the invocation, unless the function exposes its
// errors; a caller with a key sees the error; the row keeps it either way.
func TestFunctionErrorExposure(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options{Auth: true})
	admin := []string{"Authorization", "Bearer " + p.AdminKey}
	invoke := []string{"Authorization", "Bearer " + p.Key(t, "invoke")}
	source, err := os.ReadFile("../testdata/functions/error.lua")
	if err != nil {
		t.Fatal(err)
	}
	for name, expose := range map[string]bool{"hidden": false, "shown": true} {
		res := do(t, http.MethodPut, p.URL+"/v1/functions/"+name, map[string]any{"source": string(source), "expose_errors": expose}, admin...)
		if res.status != http.StatusCreated {
			t.Fatalf("deploy %s: %d %s", name, res.status, res.body)
		}
	}
	tests := []struct {
		name, function string
		header         []string
		shows          bool
	}{
		{"anonymous, hidden", "hidden", nil, false},
		{"anonymous, exposed", "shown", nil, true},
		{"invoke key, hidden", "hidden", invoke, true},
		{"admin key, hidden", "hidden", admin, true},
		{"foreign token is anonymous", "hidden", []string{"Authorization", "Bearer user-token"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := do(t, http.MethodGet, p.URL+"/fn/"+tt.function, nil, tt.header...)
			id := res.header.Get("X-Invocation-Id")
			want := "invocation " + id
			if tt.shows {
				want = tt.function + ":6: attempt to call"
			}
			assertProblem(t, res, http.StatusInternalServerError, want)
			if !tt.shows && strings.Contains(string(res.body), ":6:") {
				t.Errorf("the Lua error reached an anonymous caller: %s", res.body)
			}
			inv := do(t, http.MethodGet, p.URL+"/v1/invocations/"+id, nil, admin...).json(t)
			if errText, _ := inv["error"].(string); !strings.Contains(errText, tt.function+":6: attempt to call") {
				t.Errorf("the row lost the error: %q", errText)
			}
		})
	}
}
