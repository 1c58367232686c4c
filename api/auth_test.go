package api_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/picloud/picloud/api"
	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/internal/platformtest"
	"github.com/picloud/picloud/keys"
	"github.com/picloud/picloud/queue"
)

// TestAPIKeys: every /v1 operation needs a key of the right scope, and the
// answers for a missing, unknown or weak key are problem+json.
func TestAPIKeys(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{Auth: true})
	admin, invoke := p.AdminKey, p.Key(t, "invoke")
	bearer := func(key string) []string { return []string{"Authorization", "Bearer " + key} }
	hello := map[string]string{"source": `function handle(req) return "hi" end`}
	if res := do(t, http.MethodPut, p.URL+"/v1/functions/hello", hello, bearer(admin)...); res.status != http.StatusCreated {
		t.Fatalf("deploy with the admin key: %d %s", res.status, res.body)
	}

	tests := []struct {
		name   string
		method string
		path   string
		body   any
		header []string
		status int
		detail string
	}{
		{"no key", http.MethodGet, "/v1/functions", nil, nil, http.StatusUnauthorized, "needs an API key"},
		{"not a bearer", http.MethodGet, "/v1/functions", nil, []string{"Authorization", "Basic " + admin}, http.StatusUnauthorized, "needs an API key"},
		{"unknown key", http.MethodGet, "/v1/functions", nil, bearer("pic_" + strings.Repeat("a", 40)), http.StatusUnauthorized, "unknown or revoked"},
		{"foreign token", http.MethodGet, "/v1/functions", nil, bearer("ghp_123"), http.StatusUnauthorized, "unknown or revoked"},
		{"admin lists", http.MethodGet, "/v1/functions", nil, bearer(admin), http.StatusOK, ""},
		{"invoke may not list functions", http.MethodGet, "/v1/functions", nil, bearer(invoke), http.StatusForbidden, "admin scope"},
		{"invoke may not deploy", http.MethodPut, "/v1/functions/other", hello, bearer(invoke), http.StatusForbidden, "admin scope"},
		{"invoke may not make keys", http.MethodPost, "/v1/keys", map[string]string{"scope": "admin"}, bearer(invoke), http.StatusForbidden, "admin scope"},
		{"invoke may invoke", http.MethodPost, "/v1/functions/hello/invocations", map[string]any{}, bearer(invoke), http.StatusOK, ""},
		{"invoke may invoke in a batch", http.MethodPost, "/v1/functions/hello/invocations:batch", map[string]any{"invocations": []any{map[string]any{}}}, bearer(invoke), http.StatusAccepted, ""},
		{"a batch needs a key", http.MethodPost, "/v1/functions/hello/invocations:batch", map[string]any{"invocations": []any{map[string]any{}}}, nil, http.StatusUnauthorized, "needs an API key"},
		{"invoke may list invocations", http.MethodGet, "/v1/invocations", nil, bearer(invoke), http.StatusOK, ""},
		{"invoke may not cancel", http.MethodPost, "/v1/invocations/1/cancel", nil, bearer(invoke), http.StatusForbidden, "admin scope"},
		{"health needs no key", http.MethodGet, "/healthz", nil, nil, http.StatusOK, ""},
		{"readiness needs no key", http.MethodGet, "/readyz", nil, nil, http.StatusOK, ""},
		{"bad scope", http.MethodPost, "/v1/keys", map[string]string{"scope": "root"}, bearer(admin), http.StatusUnprocessableEntity, "validation failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := do(t, tt.method, p.URL+tt.path, tt.body, tt.header...)
			if tt.detail == "" {
				if res.status != tt.status {
					t.Fatalf("status = %d, want %d: %s", res.status, tt.status, res.body)
				}
				return
			}
			assertProblem(t, res, tt.status, tt.detail)
			if tt.status == http.StatusUnauthorized && !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", res.header.Get("WWW-Authenticate"))
			}
		})
	}
}

// TestKeyLifecycle: a key made through the API works until it is revoked,
// on every node: the other node has it cached and must forget it at once.
func TestKeyLifecycle(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{Auth: true})
	admin := []string{"Authorization", "Bearer " + p.AdminKey}

	created := do(t, http.MethodPost, p.URL+"/v1/keys", map[string]string{"name": "ci", "scope": "invoke"}, admin...)
	if created.status != http.StatusCreated {
		t.Fatalf("create key: %d %s", created.status, created.body)
	}
	body := created.json(t)
	key, _ := body["key"].(string)
	if !strings.HasPrefix(key, keys.Prefix) || len(key) != len(keys.Prefix)+40 || !strings.HasPrefix(key, body["prefix"].(string)) {
		t.Fatalf("created key %q with prefix %v", key, body["prefix"])
	}
	id := int64(body["id"].(float64))

	// A second API node on the same database, with its own key cache.
	other, err := queue.NewClient(p.Pool, queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := other.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Stop(ctx) })
	otherSrv := httptest.NewServer(api.New(platformtest.Services(other, catalog.New(p.Pool))))
	t.Cleanup(otherSrv.Close)

	withKey := []string{"Authorization", "Bearer " + key}
	for _, base := range []string{p.URL, otherSrv.URL} {
		if res := do(t, http.MethodGet, base+"/v1/invocations", nil, withKey...); res.status != http.StatusOK {
			t.Fatalf("%s with the new key: %d %s", base, res.status, res.body)
		}
	}
	list := do(t, http.MethodGet, p.URL+"/v1/keys", nil, admin...)
	if list.status != http.StatusOK || bytes.Contains(list.body, []byte(key)) || !bytes.Contains(list.body, []byte(`"last_used_at"`)) {
		t.Fatalf("list keys: %d %s", list.status, list.body)
	}

	revoked := do(t, http.MethodDelete, fmt.Sprintf("%s/v1/keys/%d", p.URL, id), nil, admin...)
	if revoked.status != http.StatusOK || revoked.json(t)["revoked_at"] == nil {
		t.Fatalf("revoke: %d %s", revoked.status, revoked.body)
	}
	assertProblem(t, do(t, http.MethodGet, p.URL+"/v1/invocations", nil, withKey...), http.StatusUnauthorized, "revoked")
	deadline := time.Now().Add(5 * time.Second)
	for {
		res := do(t, http.MethodGet, otherSrv.URL+"/v1/invocations", nil, withKey...)
		if res.status == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other node still accepts the revoked key: %d", res.status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	assertProblem(t, do(t, http.MethodDelete, p.URL+"/v1/keys/999999", nil, admin...), http.StatusNotFound, "999999")
}

// TestFunctionAuth: /fn is public unless the function says auth "key"; a
// PiCloud key never reaches the script or the invocation row, while the
// function's own Authorization scheme does.
func TestFunctionAuth(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	p := platformtest.Start(t, platformtest.Options{Auth: true})
	config := p.Services()
	config.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := httptest.NewServer(api.New(config))
	t.Cleanup(srv.Close)
	admin := []string{"Authorization", "Bearer " + p.AdminKey}
	invoke := p.Key(t, "invoke")
	echoAuth := `function handle(req) return req.headers.authorization or "none" end`
	for name, auth := range map[string]string{"open": "", "closed": "key"} {
		body := map[string]string{"source": echoAuth}
		if auth != "" {
			body["auth"] = auth
		}
		res := do(t, http.MethodPut, srv.URL+"/v1/functions/"+name, body, admin...)
		if res.status != http.StatusCreated {
			t.Fatalf("deploy %s: %d %s", name, res.status, res.body)
		}
		if want := map[string]string{"": "public", "key": "key"}[auth]; res.json(t)["auth"] != want {
			t.Errorf("%s: auth = %v, want %s", name, res.json(t)["auth"], want)
		}
	}

	tests := []struct {
		name     string
		function string
		auth     string
		status   int
		body     string
	}{
		{"public without key", "open", "", http.StatusOK, "none"},
		{"public keeps the function's own scheme", "open", "Bearer user-token-123", http.StatusOK, "Bearer user-token-123"},
		{"public does not see a PiCloud key", "open", "Bearer " + invoke, http.StatusOK, "none"},
		{"key-only without key", "closed", "", http.StatusUnauthorized, ""},
		{"key-only with a foreign token", "closed", "Bearer user-token-123", http.StatusUnauthorized, ""},
		{"key-only with a revoked-looking key", "closed", "Bearer pic_" + strings.Repeat("b", 40), http.StatusUnauthorized, ""},
		{"key-only with an invoke key", "closed", "Bearer " + invoke, http.StatusOK, "none"},
		{"key-only with an admin key", "closed", "Bearer " + p.AdminKey, http.StatusOK, "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var header []string
			if tt.auth != "" {
				header = []string{"Authorization", tt.auth}
			}
			res := do(t, http.MethodGet, srv.URL+"/fn/"+tt.function, nil, header...)
			if tt.status == http.StatusUnauthorized {
				assertProblem(t, res, tt.status, "needs an API key")
				return
			}
			if res.status != tt.status || string(res.body) != tt.body {
				t.Fatalf("got %d %q, want %d %q", res.status, res.body, tt.status, tt.body)
			}
			inv := do(t, http.MethodGet, srv.URL+"/v1/invocations/"+res.header.Get("X-Invocation-Id"), nil, admin...)
			if bytes.Contains(inv.body, []byte(keys.Prefix)) {
				t.Errorf("the invocation row holds the key: %s", inv.body)
			}
		})
	}
	if strings.Contains(logs.String(), keys.Prefix) {
		t.Errorf("a key reached the log:\n%s", logs.String())
	}
}

// TestRequestLimits: a source over MaxSourceBytes is refused with a 422
// naming the field, not cut off by the body limit; /fn bodies stop at
// MaxBodyBytes with a 413.
func TestRequestLimits(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{})
	config := p.Services()
	config.DisableAuth, config.MaxBodyBytes = true, 1000
	srv := httptest.NewServer(api.New(config))
	t.Cleanup(srv.Close)
	long := "-- " + strings.Repeat("x", api.MaxSourceBytes) + "\nfunction handle() end"
	assertProblem(t, do(t, http.MethodPut, srv.URL+"/v1/functions/big", map[string]string{"source": long}), http.StatusUnprocessableEntity, "validation failed")
	deploy(t, srv.URL, "echo", "echo.lua")
	assertProblem(t, do(t, http.MethodPost, srv.URL+"/fn/echo", strings.Repeat("y", 1001)), http.StatusRequestEntityTooLarge, "1000 bytes")
	if res := do(t, http.MethodPost, srv.URL+"/fn/echo", `{"ok": true}`); res.status != http.StatusOK {
		t.Errorf("a small body: %d %s", res.status, res.body)
	}
}
