package queue_test

import (
	"strings"
	"testing"

	"github.com/picloud/picloud/queue"
)

// TestBufferedWriteBytes: the kv writes and child invocations an
// invocation buffers in the worker are capped in bytes (16 MiB), not only in
// count: 1,000 kv.set of 1 MiB once took a worker to 2.9 GB. The refusal is
// a Lua error at the call's line, which pcall can catch, and nothing of a
// refused write is kept.
func TestBufferedWriteBytes(t *testing.T) {
	client, _ := hostWorker(t, false)
	put(t, client, "child", echoPayload, queue.FunctionOptions{})
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
			put(t, client, "writer", "local big = string.rep(\"x\", 1000000)\nfunction handle(req)\n  "+tc.body+"\n  return \"done\"\nend", queue.FunctionOptions{})
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
end`, queue.FunctionOptions{})
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
