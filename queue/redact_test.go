package queue_test

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/queue"
)

// redactSecrets are set on the function under test. ODD needs escaping in
// every spelling (quotes, a backslash, HTML characters, non-ASCII, a tab),
// so that an escaped copy differs from the value; NUM is all digits, so
// that it can be stored as a JSON number.
var redactSecrets = map[string]string{
	"PLAIN": "sk-live-0123456789",
	"ODD":   "p\"w\\d<é>\t&x",
	"NUM":   "80873611",
}

// secretLeaks returns the secret spellings found in text: the value, and
// the value escaped as JSON (with and without Go's HTML escaping), by Go's
// %q and %+q, by Lua's %q and in a URL.
func secretLeaks(text string) []string {
	var found []string
	for name, v := range redactSecrets {
		goJSON, _ := json.Marshal(v)
		forms := []string{
			v,
			strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(string(goJSON[1 : len(goJSON)-1])),
			string(goJSON[1 : len(goJSON)-1]),
			strings.Trim(strconv.Quote(v), `"`),
			strings.Trim(strconv.QuoteToASCII(v), `"`),
			strings.NewReplacer(`"`, `\"`, `\`, `\\`, "\t", `\9`).Replace(v), // Lua's %q
			url.QueryEscape(v),
		}
		for i, f := range forms {
			if strings.Contains(text, f) && !slices.Contains(forms[:i], f) {
				found = append(found, name+" as "+strconv.Quote(f))
			}
		}
	}
	return found
}

// storedStrings is every string an invocation row shows its reader: the
// error, each retry's error, the log lines, the strings, keys and numbers
// inside the log fields and the result.
func storedStrings(t *testing.T, inv queue.Invocation) []string {
	t.Helper()
	out := []string{inv.Error}
	for _, e := range inv.Errors {
		out = append(out, e.Error)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case json.Number:
			out = append(out, string(v))
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for k, e := range v {
				out = append(out, k)
				walk(e)
			}
		}
	}
	decode := func(data json.RawMessage) {
		if len(data) == 0 {
			return
		}
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("stored JSON %s: %v", data, err)
		}
		walk(v)
	}
	for _, l := range inv.Logs {
		out = append(out, l.Message)
		decode(l.Fields)
	}
	decode(inv.Result)
	return out
}

// TestSecretsAreMaskedInRows: whatever way a script writes a secret into
// what its invocation row stores (a log line or its fields, an error, a
// retry's error, the result, an HTTP response), in the spellings scripts
// commonly produce, the row holds the mask instead.
func TestSecretsAreMaskedInRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, _ := hostWorker(t, false)
	for _, tt := range []struct {
		name, body string
		http       bool // an HTTP trigger, whose result is the response
		attempts   int
		unechoed   bool // the output does not repeat the secret at all
	}{
		{name: "log field value", body: `log.info("call", {token = secrets.ODD, plain = secrets.PLAIN})`},
		{name: "log field key", body: `log.info("call", {[secrets.ODD] = 1, [secrets.PLAIN] = true})`},
		{name: "nested log field", body: `log.warn("call", {list = {{t = secrets.PLAIN}, secrets.ODD}})`},
		{name: "number log field", body: `log.debug("call", {n = tonumber(secrets.NUM)})`},
		{name: "json.encode in a log field", body: `log.info("call", {body = json.encode({t = secrets.ODD})})`},
		{name: "json.encode in a log line", body: `print(json.encode({t = secrets.ODD}))`},
		{name: "Lua %q in a log line", body: `print(string.format("%q", secrets.ODD))`},
		{name: "time.parse error", body: `time.parse(secrets.ODD)`},
		{name: "long time.parse error", body: `time.parse(secrets.PLAIN:rep(5))`, unechoed: true},
		{name: "bad URL error", body: `http.request{url = "http://%zz/" .. secrets.ODD}`},
		{name: "control character URL error", body: `http.request{url = "http://example.com/" .. secrets.ODD}`},
		{name: "json.encode error", body: `error(json.encode({t = secrets.ODD}))`},
		{name: "Lua %q error on each retry", body: `error(string.format("%q", secrets.ODD))`, attempts: 2},
		{name: "error table", body: `error({token = secrets.ODD})`, unechoed: true},
		{name: "result", body: `return {token = secrets.ODD, [secrets.PLAIN] = {secrets.ODD}, n = tonumber(secrets.NUM)}`},
		{name: "json.encode result", body: `return json.encode({t = secrets.ODD})`},
		{name: "string result", body: `return secrets.PLAIN`},
		{name: "response", body: `return {status = 200, headers = {["x-token"] = secrets.ODD}, body = "token=" .. secrets.PLAIN}`, http: true},
		{name: "JSON response", body: `return {token = secrets.ODD}`, http: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := "f" + strconv.Itoa(len(tt.name)) + strings.ReplaceAll(strings.ReplaceAll(tt.name, " ", "_"), ".", "_")
			name = strings.Map(func(r rune) rune {
				if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
					return r
				}
				return -1
			}, strings.ToLower(name))
			put(t, client, name, "function handle(req)\n"+tt.body+"\nend", catalog.FunctionOptions{HTTPAllow: []string{"example.com"}, RetryBackoff: time.Millisecond})
			for k, v := range redactSecrets {
				if err := catalogOf(client).SetEnv(ctx, name, k, v, true); err != nil {
					t.Fatal(err)
				}
			}
			p := queue.InvokeParams{Function: name, Payload: json.RawMessage(`{}`), MaxAttempts: max(tt.attempts, 1)}
			if tt.http {
				p.Trigger, p.Request = queue.TriggerHTTP, httpRequest("x")
			}
			inv, err := client.GetInvocation(ctx, waitFor(t, client, invoke(t, client, p).ID).ID)
			if err != nil {
				t.Fatal(err)
			}
			masked := false
			for _, s := range storedStrings(t, inv) {
				if leaks := secretLeaks(s); leaks != nil {
					t.Errorf("row stores %s in %q", strings.Join(leaks, ", "), s)
				}
				masked = masked || strings.Contains(s, "[secret ")
			}
			if !masked && !tt.unechoed {
				t.Errorf("no mask in the row: status %s, error %q, logs %+v, result %s", inv.Status, inv.Error, inv.Logs, inv.Result)
			}
			if tt.attempts > 1 && len(inv.Errors) != tt.attempts {
				t.Errorf("errors = %+v, want %d attempts", inv.Errors, tt.attempts)
			}
		})
	}
}
