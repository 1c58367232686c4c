package api_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"github.com/picloud/picloud/api"
	"github.com/picloud/picloud/internal/platformtest"
)

// TestBadInput: every REST input PostgreSQL cannot store (a NUL character,
// text that is not UTF-8, an integer past its column, a time outside the
// documented range) is a 422 problem naming the field, never a 500 with the
// database's text.
func TestBadInput(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{Concurrency: 2})
	deploy(t, p.URL, "echo", "echo.lua")
	const ok = `function handle(req) return 1 end`
	withNUL := ok + " -- \u0000"
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   any
		header []string
		field  string // the location the problem must name
	}{
		{"NUL in a source", http.MethodPut, "/v1/functions/f", map[string]any{"source": withNUL}, nil, "body.source"},
		{"NUL in a source to validate", http.MethodPost, "/v1/functions/f/validate", map[string]any{"source": withNUL}, nil, "body.source"},
		{"NUL in an http_allow entry", http.MethodPut, "/v1/functions/f", map[string]any{"source": ok, "http_allow": []string{"a\u0000.com"}}, nil, "body.http_allow[0]"},
		{"max_concurrency 2^62", http.MethodPut, "/v1/functions/f", map[string]any{"source": ok, "max_concurrency": int64(1) << 62}, nil, "body.max_concurrency"},
		{"max_concurrency 2^31", http.MethodPut, "/v1/functions/f", map[string]any{"source": ok, "max_concurrency": int64(1) << 31}, nil, "body.max_concurrency"},
		{"max_concurrency 2^62 to validate", http.MethodPost, "/v1/functions/f/validate", map[string]any{"source": ok, "max_concurrency": int64(1) << 62}, nil, "body.max_concurrency"},
		{"version past the column", http.MethodGet, "/v1/functions/echo/versions/4294967297", nil, nil, "path.version"},
		{"NUL in an env value", http.MethodPut, "/v1/functions/echo/env/A", map[string]any{"value": "a\u0000"}, nil, "body.value"},
		{"NUL in a secret", http.MethodPut, "/v1/functions/echo/secrets/A", map[string]any{"value": "a\u0000"}, nil, "body.value"},
		{"NUL in a key's name", http.MethodPost, "/v1/keys", map[string]any{"name": "a\u0000", "scope": "invoke"}, nil, "body.name"},
		{"NUL in a sync payload", http.MethodPost, "/v1/functions/echo/invocations", map[string]any{"payload": map[string]any{"s": "a\u0000"}}, nil, "body.payload.s"},
		{"NUL in an async payload", http.MethodPost, "/v1/functions/echo/invocations", map[string]any{"async": true, "payload": []any{1, "a\u0000"}}, nil, "body.payload[1]"},
		{"NUL in a payload's key", http.MethodPost, "/v1/functions/echo/invocations", map[string]any{"payload": map[string]any{"k\u0000": 1}}, nil, "body.payload"},
		{"NUL in a schedule's payload", http.MethodPut, "/v1/functions/echo/schedules/s", map[string]any{"cron": "@hourly", "payload": map[string]any{"s": "\u0000"}}, nil, "body.payload.s"},
		{"NUL in a schedule's time zone", http.MethodPut, "/v1/functions/echo/schedules/s", map[string]any{"cron": "@hourly", "timezone": "UTC\u0000"}, nil, "body.timezone"},
		{"NUL in a schedule's cron", http.MethodPut, "/v1/functions/echo/schedules/s", map[string]any{"cron": "@hourly\u0000"}, nil, "body.cron"},
		{"invalid UTF-8 in an Idempotency-Key", http.MethodPost, "/v1/functions/echo/invocations", map[string]any{"async": true}, []string{"Idempotency-Key", "k\xff"}, "header.Idempotency-Key"},
		{"invalid UTF-8 in a sync Idempotency-Key", http.MethodPost, "/v1/functions/echo/invocations", map[string]any{}, []string{"Idempotency-Key", "\xc3("}, "header.Idempotency-Key"},
		{"NUL in ?function=", http.MethodGet, "/v1/invocations?function=%00", nil, nil, "query.function"},
		{"invalid UTF-8 in ?function=", http.MethodGet, "/v1/invocations?function=a%ff", nil, nil, "query.function"},
		{"run_at before 2000", http.MethodPost, "/v1/functions/echo/invocations", map[string]any{"async": true, "run_at": "1999-12-31T23:59:59Z"}, nil, "body.run_at"},
		{"run_at in year 1", http.MethodPost, "/v1/functions/echo/invocations", map[string]any{"async": true, "run_at": "0001-01-01T00:00:00Z"}, nil, "body.run_at"},
		{"run_at in year 0", http.MethodPost, "/v1/functions/echo/invocations:batch", map[string]any{"invocations": []any{map[string]any{}, map[string]any{"run_at": "0000-01-01T00:00:00Z"}}}, nil, "body.invocations[1].run_at"},
		{"run_at after 9999 by its offset", http.MethodPost, "/v1/functions/echo/invocations", map[string]any{"async": true, "run_at": "9999-12-31T23:00:00-05:00"}, nil, "body.run_at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := do(t, tc.method, p.URL+tc.path, tc.body, tc.header...)
			assertProblem(t, res, http.StatusUnprocessableEntity, "")
			if !strings.Contains(string(res.body), `"location":"`+tc.field+`"`) {
				t.Errorf("the problem does not name %s: %s", tc.field, res.body)
			}
			for _, leak := range []string{"SQLSTATE", "ERROR:", "invalid byte sequence", "unsupported Unicode escape"} {
				if strings.Contains(string(res.body), leak) {
					t.Errorf("the problem carries the database's text (%q): %s", leak, res.body)
				}
			}
		})
	}

	// Within the range: accepted.
	for _, runAt := range []string{"2000-01-01T00:00:00Z", "2100-06-01T12:00:00+02:00"} {
		if res := do(t, http.MethodPost, p.URL+"/v1/functions/echo/invocations", map[string]any{"async": true, "run_at": runAt}); res.status != http.StatusAccepted {
			t.Errorf("run_at %s: %d %s", runAt, res.status, res.body)
		}
	}
	if res := do(t, http.MethodPut, p.URL+"/v1/functions/f", map[string]any{"source": ok, "max_concurrency": 1000000}); res.status != http.StatusCreated {
		t.Errorf("max_concurrency 1000000: %d %s", res.status, res.body)
	}
	// What the validation accepted, the PUT stores, and the other way round.
	if res := do(t, http.MethodGet, p.URL+"/v1/functions/f", nil); res.json(t)["source"] != ok {
		t.Errorf("the source with NUL replaced the stored one: %s", res.body)
	}
}

// TestIngressCleansText: anyone can call a public function, so a request
// PostgreSQL could not store must not be a 500 (nor an ERROR line in the
// log): the script gets its path, query and headers with every NUL and every
// byte sequence that is not UTF-8 replaced by U+FFFD, and the row holds the
// same.
func TestIngressCleansText(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{Concurrency: 2})
	source := `function handle(req) return {path = req.path, query = req.query, x = req.headers["x-a"] or json.null, body = req.body} end`
	if res := do(t, http.MethodPut, p.URL+"/v1/functions/req", map[string]string{"source": source}); res.status != http.StatusCreated {
		t.Fatalf("deploy: %d %s", res.status, res.body)
	}
	for _, tc := range []struct {
		name      string
		url       string
		header    []string
		wantPath  string
		wantQuery map[string]string
		wantX     any
	}{
		{"NUL in a query value", "/fn/req?q=%00", nil, "/", map[string]string{"q": "\ufffd"}, nil},
		{"NUL in a query key", "/fn/req?a%00b=1", nil, "/", map[string]string{"a\ufffdb": "1"}, nil},
		{"invalid UTF-8 in a query value", "/fn/req?q=a%ffb", nil, "/", map[string]string{"q": "a\ufffdb"}, nil},
		{"invalid UTF-8 in a query key", "/fn/req?%c3=1", nil, "/", map[string]string{"\ufffd": "1"}, nil},
		{"keys that clean alike keep the first", "/fn/req?%fe=2&%ff=1", nil, "/", map[string]string{"\ufffd": "2"}, nil},
		{"NUL in the path", "/fn/req/%00", nil, "/\ufffd", map[string]string{}, nil},
		{"invalid UTF-8 in the path", "/fn/req/a%ff/b", nil, "/a\ufffd/b", map[string]string{}, nil},
		{"invalid UTF-8 in a header", "/fn/req", []string{"X-A", "v\xff"}, "/", map[string]string{}, "v\ufffd"},
		{"clean text is untouched", "/fn/req/caf%C3%A9?q=%E2%9C%93", []string{"X-A", "ok"}, "/café", map[string]string{"q": "✓"}, "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := do(t, http.MethodGet, p.URL+tc.url, nil, tc.header...)
			if res.status != http.StatusOK {
				t.Fatalf("got %d %s, want 200", res.status, res.body)
			}
			var got struct {
				Path  string            `json:"path"`
				Query map[string]string `json:"query"`
				X     any               `json:"x"`
			}
			if err := json.Unmarshal(res.body, &got); err != nil {
				t.Fatalf("%v: %s", err, res.body)
			}
			if got.Path != tc.wantPath || mustJSON(t, got.Query) != mustJSON(t, tc.wantQuery) || got.X != tc.wantX {
				t.Errorf("the script saw path %q query %v x-a %v, want %q %v %v", got.Path, got.Query, got.X, tc.wantPath, tc.wantQuery, tc.wantX)
			}
			inv := invocation(t, p.URL, res)
			req, _ := inv["request"].(map[string]any)
			if req["path"] != tc.wantPath || mustJSON(t, req["query"]) != mustJSON(t, tc.wantQuery) {
				t.Errorf("the row holds %v, want path %q query %v", req, tc.wantPath, tc.wantQuery)
			}
		})
	}
	// The body is bytes: passed as is, NUL included.
	res := do(t, http.MethodPost, p.URL+"/fn/req", "a\x00b")
	if res.status != http.StatusOK || !strings.Contains(string(res.body), `"body":"a\u0000b"`) {
		t.Errorf("body with NUL: %d %s", res.status, res.body)
	}
}

// TestEveryOperationIsChecked: the checks of TestBadInput hold for every
// operation because every one is registered through api's register, which
// runs them; this keeps a new one from calling huma.Register itself.
func TestEveryOperationIsChecked(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") || file == "input.go" {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "Register" {
				if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "huma" {
					t.Errorf("%s: huma.Register skips the input checks; call register", fset.Position(sel.Pos()))
				}
			}
			return true
		})
	}
}

// TestIntegersHaveAMaximum: every integer a request can carry is bounded in
// the document, so that huma refuses a value past its column (PostgreSQL's
// integer is 32 bits) with a 422 instead of the database with a 500. Ids
// are bigint, as are their Go types.
func TestIntegersHaveAMaximum(t *testing.T) {
	t.Parallel()
	doc := api.New(api.Config{}).OpenAPI()
	var check func(where string, s *huma.Schema, depth int)
	check = func(where string, s *huma.Schema, depth int) {
		if s == nil || depth > 8 {
			return
		}
		if s.Ref != "" {
			s = doc.Components.Schemas.SchemaFromRef(s.Ref)
		}
		if s.Type == huma.TypeInteger && s.Maximum == nil {
			t.Errorf("%s: an integer without a maximum", where)
		}
		for name, p := range s.Properties {
			check(where+"."+name, p, depth+1)
		}
		check(where+"[]", s.Items, depth+1)
	}
	for path, item := range doc.Paths {
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Delete, item.Patch} {
			if op == nil {
				continue
			}
			for _, p := range op.Parameters {
				if p.Name == "id" && p.In == "path" && p.Schema.Format == "int64" {
					continue
				}
				check(op.Method+" "+path+" "+p.In+"."+p.Name, p.Schema, 0)
			}
			if op.RequestBody != nil && op.RequestBody.Content["application/json"] != nil {
				check(op.Method+" "+path+" body", op.RequestBody.Content["application/json"].Schema, 0)
			}
		}
	}
}
