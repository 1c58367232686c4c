package queue_test

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/queue"
)

// TestBufferedWriteBytes: the kv writes and child invocations an
// invocation buffers in the worker are capped in bytes (16 MiB), not only in
// count: 1,000 kv.set of 1 MiB once took a worker to 2.9 GB. The refusal is
// a Lua error at the call's line, which pcall can catch, and nothing of a
// refused write is kept.
func TestBufferedWriteBytes(t *testing.T) {
	client, _ := hostWorker(t, false)
	put(t, client, "child", echoPayload, catalog.FunctionOptions{})
	const refused = "may buffer at most 16777216 bytes"
	for _, tc := range []struct {
		name, body string
		refused    bool
	}{
		// 17 values of 1 MiB less a little, under the per-value limit.
		{"kv.set over the cap", `for i = 1, 17 do kv.set("k" .. i, big) end`, true},
		{"kv.set under the cap", `for i = 1, 15 do kv.set("k" .. i, big) end`, false},
		// Rewriting one key buffers every write: the cap counts them all.
		{"one key rewritten", `for i = 1, 17 do kv.set("same", big) end`, true},
		{"picloud.invoke payloads", `for i = 1, 17 do picloud.invoke("child", {big}) end`, true},
		{"kv and invoke together", `for i = 1, 9 do kv.set("k" .. i, big) picloud.invoke("child", {big}) end`, true},
		{"picloud.invoke under the cap", `for i = 1, 15 do picloud.invoke("child", {big}) end`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			put(t, client, "writer", "local big = string.rep(\"x\", 1000000)\nfunction handle(req)\n  "+tc.body+"\n  return \"done\"\nend", catalog.FunctionOptions{})
			inv := run(t, client, "writer", `{}`)
			if !tc.refused {
				if inv.Status != queue.StatusSucceeded {
					t.Fatalf("%s %q, want a success", inv.Status, inv.Error)
				}
				return
			}
			if inv.Status != queue.StatusFailed || !strings.Contains(inv.Error, refused) || !strings.Contains(inv.Error, ":3:") {
				t.Errorf("%s %q, want a failure at line 3 saying %q", inv.Status, truncate(inv.Error), refused)
			}
		})
	}

	// A refused write is not charged: after pcall catches the refusal, the
	// room left is the same.
	put(t, client, "catcher", `local big = string.rep("x", 1000000)
function handle(req)
  for i = 1, 16 do kv.set("k" .. i, big) end
  local ok1 = pcall(kv.set, "huge", big)
  local ok2 = pcall(picloud.invoke, "child", {big})
  kv.set("small", string.rep("y", 700000))
  return {ok1, ok2}
end`, catalog.FunctionOptions{})
	if inv := run(t, client, "catcher", `{}`); inv.Status != queue.StatusSucceeded || !jsonEqual(inv.Result, `[false, false]`) {
		t.Errorf("catcher = %s %s %q", inv.Status, inv.Result, truncate(inv.Error))
	}
}

func truncate(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// TestErrorCap: an invocation's error, and each retry's in its errors, is
// stored up to 64 KiB, cut at a character boundary and marked; the cut
// comes after secrets are masked, so no part of a secret is stored.
func TestErrorCap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, _ := hostWorker(t, false)
	const limit = 64 << 10
	const mark = "error truncated"
	for _, tc := range []struct {
		name, expr string
		cut        bool
	}{
		{"short", `"boom"`, false},
		{"exactly the cap", `string.rep("x", 65536 - #"fail:3: ")`, false},
		{"10 MB", `string.rep("x", 10000000)`, true},
		{"two-byte characters", `string.rep("é", 100000)`, true},
		{"two-byte characters, shifted", `"x" .. string.rep("é", 100000)`, true},
		{"three-byte characters", `string.rep("€", 100000)`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			put(t, client, "fail", "function handle(req)\n  error("+tc.expr+")\nend", catalog.FunctionOptions{})
			inv := run(t, client, "fail", `{}`)
			if inv.Status != queue.StatusFailed || len(inv.Error) > limit || !utf8.ValidString(inv.Error) || strings.Contains(inv.Error, mark) != tc.cut {
				t.Errorf("%s, error of %d bytes (valid UTF-8: %v) ending %q; want at most %d, cut: %v",
					inv.Status, len(inv.Error), utf8.ValidString(inv.Error), inv.Error[max(0, len(inv.Error)-100):], limit, tc.cut)
			}
			if tc.name == "exactly the cap" && len(inv.Error) != limit {
				t.Errorf("error of %d bytes, want %d kept whole", len(inv.Error), limit)
			}
		})
	}

	// Each attempt puts the secret a few bytes further along, so that one
	// of them straddles the cut: cut before masking, it would leave a part
	// of the secret.
	const secret = "sk-0123456789abcdef"
	put(t, client, "leaky", `function handle(req)
  error(string.rep("a", 65536 - 130 + 12 * req.attempt) .. secrets.API_KEY .. string.rep("b", 100000))
end`, catalog.FunctionOptions{MaxAttempts: 8, RetryBackoff: time.Millisecond})
	if err := catalogOf(client).SetEnv(ctx, "leaky", "API_KEY", secret, true); err != nil {
		t.Fatal(err)
	}
	inv := run(t, client, "leaky", `{}`)
	if inv.Status != queue.StatusFailed || len(inv.Errors) != 8 {
		t.Fatalf("leaky = %s with %d errors", inv.Status, len(inv.Errors))
	}
	for _, e := range inv.Errors {
		if len(e.Error) > limit || !strings.Contains(e.Error, mark) || strings.Contains(e.Error, secret[:4]) {
			t.Errorf("attempt %d: error of %d bytes ending %q", e.Attempt, len(e.Error), e.Error[max(0, len(e.Error)-120):])
		}
	}
}

// TestListCutsErrors: a page of the list holds at most 1024 characters of
// each error, marked when cut, so that its size is bounded whatever the
// stored errors (9 errors of 45 MB once made a 425 MB page); the invocation
// itself has the whole error.
func TestListCutsErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, _ := hostWorker(t, false)
	const mark = "... [cut in lists: the invocation itself has the whole error]"
	for _, tc := range []struct {
		name, expr string
		maxBytes   int // of the error in the list, without the mark
		cut        bool
	}{
		{"short", `"boom"`, 1024, false},
		{"1024 bytes", `string.rep("x", 1024 - #"lister:2: ")`, 1024, false},
		{"1025 bytes", `string.rep("x", 1025 - #"lister:2: ")`, 1024, true},
		{"60000 bytes", `string.rep("x", 60000)`, 1024, true},
		{"two-byte characters", `string.rep("é", 30000)`, 2048, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			put(t, client, "lister", "function handle(req)\n  error("+tc.expr+")\nend", catalog.FunctionOptions{})
			inv := run(t, client, "lister", `{}`)
			page, _, err := client.ListInvocations(ctx, queue.ListParams{Function: "lister", Limit: 1})
			if err != nil || len(page) != 1 || page[0].ID != inv.ID {
				t.Fatalf("list = %+v, %v", page, err)
			}
			got := page[0].Error
			text, cut := strings.CutSuffix(got, mark)
			if cut != tc.cut || len(text) > tc.maxBytes || !strings.HasPrefix(inv.Error, text) || !utf8.ValidString(got) {
				t.Errorf("listed error of %d bytes ending %q (cut: %v), want at most %d bytes of the stored %d, cut: %v",
					len(got), got[max(0, len(got)-80):], cut, tc.maxBytes, len(inv.Error), tc.cut)
			}
			if !cut && got != inv.Error {
				t.Errorf("listed error %q, stored %q", truncate(got), truncate(inv.Error))
			}
		})
	}
}
