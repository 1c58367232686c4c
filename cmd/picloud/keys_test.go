package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/picloud/picloud/internal/platformtest"
)

// runKeys runs a keys subcommand in-process and returns its stdout.
func runKeys(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var c cli
	var stdout, stderr bytes.Buffer
	parser, err := kong.New(&c, append(kongOptions(), kong.Writers(&stdout, &stderr),
		kong.Exit(func(int) { t.Fatalf("picloud %v exited: %s", args, stderr.String()) }))...)
	if err != nil {
		t.Fatal(err)
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		return "", err
	}
	err = run(context.Background(), kctx, slog.New(slog.DiscardHandler))
	return stdout.String(), err
}

// TestKeysCommand: an operator makes keys straight in the database, and the
// API honours them at once; a revoked key stops working.
func TestKeysCommand(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{Auth: true})
	dbFlag := "--database-url=" + p.Pool.Config().ConnString()

	out, err := runKeys(t, "keys", dbFlag, "create", "--scope", "invoke", "--name", "ci", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		ID    int64  `json:"id"`
		Key   string `json:"key"`
		Scope string `json:"scope"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Scope != "invoke" || !strings.HasPrefix(created.Key, "pic_") {
		t.Fatalf("keys create -o json printed %q (%v)", out, err)
	}
	adminKey, err := runKeys(t, "keys", dbFlag, "create", "--scope", "admin")
	if err != nil {
		t.Fatal(err)
	}
	adminKey = strings.TrimSpace(adminKey)

	status := func(method, path, key string) int {
		req, _ := http.NewRequest(method, p.URL+path, strings.NewReader(`{"source": "function handle() end"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if got := status(http.MethodPut, "/v1/functions/f", adminKey); got != http.StatusCreated {
		t.Errorf("deploy with the new admin key: %d", got)
	}
	if got := status(http.MethodPut, "/v1/functions/f", created.Key); got != http.StatusForbidden {
		t.Errorf("deploy with the invoke key: %d, want 403", got)
	}
	if got := status(http.MethodGet, "/v1/invocations", created.Key); got != http.StatusOK {
		t.Errorf("list invocations with the invoke key: %d", got)
	}

	list, err := runKeys(t, "keys", dbFlag, "ls")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(list, "invoke") || !strings.Contains(list, "ci") || strings.Contains(list, created.Key) {
		t.Errorf("keys ls printed:\n%s", list)
	}
	if _, err := runKeys(t, "keys", dbFlag, "revoke", strconv.FormatInt(created.ID, 10)); err != nil {
		t.Fatal(err)
	}
	// The server cached the key; the revocation's notification reaches it
	// a moment after the command returns.
	deadline := time.Now().Add(5 * time.Second)
	for status(http.MethodGet, "/v1/invocations", created.Key) != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatal("the server still accepts the revoked key")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := runKeys(t, "keys", dbFlag, "revoke", "999999"); exitCode(err) != exitNotFound {
		t.Errorf("revoking an unknown key: %v (exit %d), want exit %d", err, exitCode(err), exitNotFound)
	}
}
