package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	lua "github.com/Shopify/go-lua"
)

// newTestPool returns a pool whose operator log is discarded (several tests
// provoke Go panics on purpose) and which is closed when the test ends.
func newTestPool(t testing.TB, size int) *Pool {
	t.Helper()
	p := NewPool(Config{Size: size, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(p.Close)
	return p
}

func exampleFunction(t testing.TB, name string) Function {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "testdata", "functions", name+".lua"))
	if err != nil {
		t.Fatal(err)
	}
	return Function{Name: name, Version: 1, Source: string(src)}
}

// runSource runs src as function "t" with a short timeout.
func runSource(t testing.TB, p *Pool, src string) Result {
	t.Helper()
	return p.Run(context.Background(), Function{Name: "t", Version: 1, Source: src}, Request{Method: "GET"}, Limits{Timeout: 5 * time.Second})
}

func logMessages(res Result) []string {
	var out []string
	for _, e := range res.Logs {
		out = append(out, e.Level+":"+e.Message)
	}
	return out
}

func TestExamples(t *testing.T) {
	p := newTestPool(t, 1)
	tests := []struct {
		name       string
		req        Request
		limits     Limits
		status     Status
		httpStatus int
		ctype      string
		body       string
		value      string
		errPrefix  string
		logs       []string
	}{
		{
			name:       "hello",
			req:        Request{Trigger: "http", Method: "GET", Query: map[string]string{"name": "Ada"}},
			status:     Succeeded,
			httpStatus: 200,
			ctype:      "text/plain; charset=utf-8",
			body:       "Hello, Ada!",
			value:      `"Hello, Ada!"`,
			logs:       []string{"info:greeting Ada"},
		},
		{
			name:       "hello",
			req:        Request{Trigger: "http", Method: "GET"},
			status:     Succeeded,
			httpStatus: 200,
			ctype:      "text/plain; charset=utf-8",
			body:       "Hello, world!",
			value:      `"Hello, world!"`,
			logs:       []string{"info:greeting world"},
		},
		{
			name: "echo",
			req: Request{
				Trigger: "http", Method: "POST", Path: "/a/b",
				Query:   map[string]string{"x": "1"},
				Headers: map[string]string{"content-type": "application/json", "user-agent": "test"},
				Body:    []byte(`{"items":[1,2.5,"three"],"empty":[],"obj":{}}`),
			},
			status:     Succeeded,
			httpStatus: 200,
			ctype:      "application/json",
			body:       `{"body":{"empty":[],"items":[1,2.5,"three"],"obj":{}},"headers":{"content-type":"application/json"},"method":"POST","path":"/a/b","query":{"x":"1"}}`,
			value:      `{"body":{"body":{"empty":[],"items":[1,2.5,"three"],"obj":{}},"headers":{"content-type":"application/json"},"method":"POST","path":"/a/b","query":{"x":"1"}},"status":200}`,
		},
		{
			name:       "echo",
			req:        Request{Trigger: "http", Method: "GET"},
			status:     Succeeded,
			httpStatus: 200,
			ctype:      "application/json",
			body:       `{"headers":{},"method":"GET","path":"/","query":{}}`,
			value:      `{"body":{"headers":{},"method":"GET","path":"/","query":{}},"status":200}`,
		},
		{
			name:      "error",
			req:       Request{Trigger: "http", Method: "GET"},
			status:    Failed,
			errPrefix: "error:6: attempt to call",
			logs:      []string{"warn:about to fail"},
		},
		{
			name:      "loop",
			req:       Request{Trigger: "http", Method: "GET"},
			limits:    Limits{Instructions: 1_000_000},
			status:    TimedOut,
			errPrefix: "loop: instruction budget exhausted",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := p.Run(context.Background(), exampleFunction(t, tt.name), tt.req, tt.limits)
			if res.Status != tt.status {
				t.Fatalf("status = %s (%s), want %s", res.Status, res.Error, tt.status)
			}
			if !strings.HasPrefix(res.Error, tt.errPrefix) || (tt.errPrefix == "") != (res.Error == "") {
				t.Errorf("error = %q, want prefix %q", res.Error, tt.errPrefix)
			}
			if got := logMessages(res); fmt.Sprint(got) != fmt.Sprint(tt.logs) {
				t.Errorf("logs = %q, want %q", got, tt.logs)
			}
			if res.Duration <= 0 {
				t.Errorf("duration = %v", res.Duration)
			}
			if tt.status != Succeeded {
				return
			}
			if res.Response.Status != tt.httpStatus || res.Response.Headers["Content-Type"] != tt.ctype || string(res.Response.Body) != tt.body {
				t.Errorf("response = %d %q %s, want %d %q %s", res.Response.Status, res.Response.Headers["Content-Type"], res.Response.Body, tt.httpStatus, tt.ctype, tt.body)
			}
			if string(res.Value) != tt.value {
				t.Errorf("value = %s, want %s", res.Value, tt.value)
			}
		})
	}
}

func TestResponseRules(t *testing.T) {
	p := newTestPool(t, 1)
	tests := []struct {
		ret     string // Lua expression after "return"
		status  int
		headers map[string]string
		body    string
		value   string
		err     string // substring; set for Failed
	}{
		{ret: "", status: 204, headers: map[string]string{}, value: "null"},
		{ret: "nil", status: 204, headers: map[string]string{}, value: "null"},
		{ret: `"hi"`, status: 200, headers: map[string]string{"Content-Type": contentTypeText}, body: "hi", value: `"hi"`},
		{ret: `"\0\255"`, status: 200, headers: map[string]string{"Content-Type": contentTypeText}, body: "\x00\xff", value: `"\u0000\ufffd"`},
		{ret: "42", status: 200, headers: map[string]string{"Content-Type": contentTypeJSON}, body: "42", value: "42"},
		{ret: "0.5", status: 200, headers: map[string]string{"Content-Type": contentTypeJSON}, body: "0.5", value: "0.5"},
		{ret: "true", status: 200, headers: map[string]string{"Content-Type": contentTypeJSON}, body: "true", value: "true"},
		{ret: "{1, 2, 3}", status: 200, headers: map[string]string{"Content-Type": contentTypeJSON}, body: "[1,2,3]", value: "[1,2,3]"},
		{ret: "{}", status: 200, headers: map[string]string{"Content-Type": contentTypeJSON}, body: "{}", value: "{}"},
		{ret: `{a = 1, b = {"x"}}`, status: 200, headers: map[string]string{"Content-Type": contentTypeJSON}, body: `{"a":1,"b":["x"]}`, value: `{"a":1,"b":["x"]}`},
		{ret: `"a", "b"`, status: 200, headers: map[string]string{"Content-Type": contentTypeText}, body: "a", value: `"a"`},
		// Response tables.
		{ret: `{status = 201}`, status: 201, headers: map[string]string{}, value: `{"status":201}`},
		{ret: `{body = "x"}`, status: 200, headers: map[string]string{"Content-Type": contentTypeText}, body: "x", value: `{"body":"x"}`},
		{ret: `{status = 404, body = {error = "nope"}}`, status: 404, headers: map[string]string{"Content-Type": contentTypeJSON}, body: `{"error":"nope"}`, value: `{"body":{"error":"nope"},"status":404}`},
		{ret: `{body = json.array()}`, status: 200, headers: map[string]string{"Content-Type": contentTypeJSON}, body: `[]`, value: `{"body":[]}`},
		{ret: `{status = 302, headers = {Location = "/x"}}`, status: 302, headers: map[string]string{"Location": "/x"}, value: `{"headers":{"Location":"/x"},"status":302}`},
		{ret: `{headers = {["content-type"] = "text/html"}, body = "<p>"}`, status: 200, headers: map[string]string{"content-type": "text/html"}, body: "<p>", value: `{"body":"\u003cp\u003e","headers":{"content-type":"text/html"}}`},
		{ret: `{headers = {["Content-Type"] = "application/vnd.x+json"}, body = {1}}`, status: 200, headers: map[string]string{"Content-Type": "application/vnd.x+json"}, body: "[1]", value: `{"body":[1],"headers":{"Content-Type":"application/vnd.x+json"}}`},
		// Look like response tables but are data.
		{ret: `{status = "ok"}`, status: 200, headers: map[string]string{"Content-Type": contentTypeJSON}, body: `{"status":"ok"}`, value: `{"status":"ok"}`},
		{ret: `{status = 200, extra = 1}`, status: 200, headers: map[string]string{"Content-Type": contentTypeJSON}, body: `{"extra":1,"status":200}`, value: `{"extra":1,"status":200}`},
		{ret: `{status = "ok", body = "x"}`, status: 200, headers: map[string]string{"Content-Type": contentTypeJSON}, body: `{"body":"x","status":"ok"}`, value: `{"body":"x","status":"ok"}`},
		{ret: `{status = 999, headers = 5}`, status: 200, headers: map[string]string{"Content-Type": contentTypeJSON}, body: `{"headers":5,"status":999}`, value: `{"headers":5,"status":999}`},
		// A status given as a string Lua reads as a number.
		{ret: `{status = "201", body = "made"}`, status: 201, headers: map[string]string{"Content-Type": contentTypeText}, body: "made", value: `{"body":"made","status":"201"}`},
		{ret: `{status = 599}`, status: 599, headers: map[string]string{}, value: `{"status":599}`},
		{ret: `{status = 200.0}`, status: 200, headers: map[string]string{}, value: `{"status":200}`},
		// A status no final HTTP answer has fails the run: 1xx would be
		// sent as an interim response, the others silently became data.
		{ret: `{status = 100}`, err: "response status 100 is not an HTTP status a function may answer"},
		{ret: `{status = 101}`, err: "response status 101"},
		{ret: `{status = 103, body = "x"}`, err: "response status 103"},
		{ret: `{status = 199}`, err: "response status 199"},
		{ret: `{status = 600}`, err: "response status 600"},
		{ret: `{status = 700}`, err: "response status 700"},
		{ret: `{status = 999}`, err: "response status 999"},
		{ret: `{status = 0}`, err: "response status 0"},
		{ret: `{status = -200}`, err: "response status -200"},
		{ret: `{status = 200.5}`, err: "response status 200.5"},
		{ret: `{status = 1e300}`, err: "response status 1e+300"},
		{ret: `{status = "200.5"}`, err: `response status "200.5"`},
		{ret: `{status = "101"}`, err: `response status "101"`},
		{ret: `{status = string.rep("0", 1000) .. "101"}`, err: `response status "00000000000000000000..." is not`},
		{ret: `{headers = {n = 1}}`, status: 200, headers: map[string]string{"Content-Type": contentTypeJSON}, body: `{"headers":{"n":1}}`, value: `{"headers":{"n":1}}`},
		{ret: `{body = 5}`, status: 200, headers: map[string]string{"Content-Type": contentTypeJSON}, body: `{"body":5}`, value: `{"body":5}`},
		// Unconvertible.
		{ret: "print", err: "cannot encode: a function value at $"},
		{ret: "{f = print}", err: "a function value at $.f"},
		{ret: "{body = {1, {g = print}}}", err: "a function value at $.body[2].g"},
		{ret: "(function() local t = {} t.self = t return t end)()", err: "cyclic table"},
		{ret: "0/0", err: "NaN"},
		{ret: "math.huge", err: "+Inf"},
		{ret: `{status = 200, headers = {["bad name"] = "x"}}`, err: `header name "bad name"`},
		{ret: `{headers = {X = "a\r\nSet-Cookie: x"}}`, err: "control characters"},
		{ret: `{[true] = 1}`, err: "table key of type boolean"},
		{ret: `string.rep("x", 7 * 1024 * 1024)`, err: "response body is 7340032 bytes; the limit is 6291456"},
	}
	for _, tt := range tests {
		t.Run(tt.ret, func(t *testing.T) {
			res := runSource(t, p, "function handle(req) return "+tt.ret+" end")
			if tt.err != "" {
				if res.Status != Failed || !strings.Contains(res.Error, tt.err) {
					t.Fatalf("got %s %q, want failed with %q", res.Status, res.Error, tt.err)
				}
				if res.Value != nil || res.Response.Status != 0 {
					t.Errorf("failed result carries value %s / response %d", res.Value, res.Response.Status)
				}
				return
			}
			if res.Status != Succeeded {
				t.Fatalf("status %s: %s", res.Status, res.Error)
			}
			r := res.Response
			if r.Status != tt.status || fmt.Sprint(r.Headers) != fmt.Sprint(tt.headers) || string(r.Body) != tt.body {
				t.Errorf("response = %d %v %q, want %d %v %q", r.Status, r.Headers, r.Body, tt.status, tt.headers, tt.body)
			}
			// Value is compared after normalising, since encoding/json
			// escapes <, > differently; it must be valid JSON either way.
			if !json.Valid(res.Value) {
				t.Fatalf("value %q is not valid JSON", res.Value)
			}
			if normJSON(t, string(res.Value)) != normJSON(t, tt.value) {
				t.Errorf("value = %s, want %s", res.Value, tt.value)
			}
		})
	}
}

func normJSON(t testing.TB, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("invalid JSON %q: %v", s, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestJSONLibrary(t *testing.T) {
	p := newTestPool(t, 1)
	tests := []struct {
		expr string // Lua expression whose value handle returns
		want string // Result.Value, exactly
	}{
		{`json.encode({1, 2, 3})`, `"[1,2,3]"`},
		{`json.encode({})`, `"{}"`},
		{`json.encode(json.array())`, `"[]"`},
		{`json.encode(json.decode("[]"))`, `"[]"`},
		{`json.encode(json.decode("{}"))`, `"{}"`},
		{`json.encode(json.decode('{"a":[],"b":[[]],"c":{"d":[]}}'))`, `"{\"a\":[],\"b\":[[]],\"c\":{\"d\":[]}}"`},
		{`json.encode(json.decode("[1,null,3]"))`, `"[1,null,3]"`},
		{`json.encode({b = 1, a = 2, [3] = "x"})`, `"{\"3\":\"x\",\"a\":2,\"b\":1}"`},
		{`json.encode({1, 2, nil, 4})`, `"{\"1\":1,\"2\":2,\"4\":4}"`},
		{`json.encode(3.0)`, `"3"`},
		{`json.encode(-0.5)`, `"-0.5"`},
		{`json.encode(1e21)`, `"1e+21"`},
		{`json.encode(2^53)`, `"9007199254740992"`},
		{`json.encode("a\"b\\c\n\t\1")`, `"\"a\\\"b\\\\c\\n\\t\\u0001\""`},
		{`json.encode("caf\195\169 \255")`, `"\"café �\""`},
		{`json.encode(nil)`, `"null"`},
		{`json.encode(true)`, `"true"`},
		{`json.decode("null")`, `null`},
		{`json.decode(' {"a" : [true, false, null, -1.5e2, "\\u00e9\\ud83d\\ude00"]} ').a[5]`, `"é😀"`},
		{`json.decode('[1, 2]')[2]`, `2`},
		{`#json.decode('[1, 2, 3]')`, `3`},
		{`json.decode('{"1": "x"}')["1"]`, `"x"`},
		{`json.decode('"\\ud800"')`, "\"\ufffd\""},
		{`select(2, pcall(json.encode, {f = print}))`, `"json.encode: cannot encode: a function value at $.f"`},
		{`select(2, pcall(json.encode, 0/0))`, `"json.encode: cannot encode: NaN at $"`},
		{`select(2, pcall(json.encode, {x = -math.huge}))`, `"json.encode: cannot encode: -Inf at $.x"`},
		{`select(2, pcall(function() local t = {} t[1] = t return json.encode(t) end))`, `"t:1: json.encode: cannot encode cyclic table: table refers to itself at $[1]"`},
		{`select(2, pcall(json.decode, "{"))`, `"json.decode: invalid JSON: expected object key, found end of input at offset 1"`},
		{`select(2, pcall(json.decode, "[1,]"))`, `"json.decode: invalid JSON: unexpected character ']' at offset 3"`},
		{`select(2, pcall(json.decode, "01"))`, `"json.decode: invalid JSON: unexpected character '1' after top-level value at offset 1"`},
		{`select(2, pcall(json.decode, string.rep("[", 200)))`, `"json.decode: nesting too deep: more than 128 levels at offset 128"`},
		{`(function() local t = {} for i = 1, 200 do t = {t} end return select(2, pcall(json.encode, t)) end)()`, `"json.encode: nesting too deep: more than 128 levels at $[1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1]"`},
		{`select(2, pcall(function() return json.decode("x") end))`, `"t:1: json.decode: invalid JSON: unexpected character 'x' at offset 0"`},
		// A DAG is not a cycle.
		{`(function() local s = {1} return json.encode({a = s, b = s}) end)()`, `"{\"a\":[1],\"b\":[1]}"`},
		// Decoded arrays stay arrays after modification; holes become null.
		{`(function() local a = json.decode("[1]") a[3] = 3 return json.encode(a) end)()`, `"[1,null,3]"`},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			res := runSource(t, p, "function handle(req) return "+tt.expr+" end")
			if res.Status != Succeeded {
				t.Fatalf("status %s: %s", res.Status, res.Error)
			}
			if string(res.Value) != tt.want {
				t.Errorf("got  %s\nwant %s", res.Value, tt.want)
			}
		})
	}
}

func TestRequestFields(t *testing.T) {
	p := newTestPool(t, 1)
	src := `function handle(req)
  return {
    trigger = req.trigger, method = req.method, path = req.path,
    q = req.query.q, h = req.headers["x-h"], len = #req.body, byte = req.body:byte(2),
    payload = req.payload, tags_is_array = getmetatable(req.payload.tags) ~= nil,
  }
end`
	req := Request{
		Trigger: "api", Method: "PUT", Path: "",
		Query:   map[string]string{"q": "1"},
		Headers: map[string]string{"X-H": "v"}, // lower-cased for the script
		Body:    []byte{0, 0xff, 1},
		Payload: json.RawMessage(`{"tags":[],"n":1}`),
	}
	res := p.Run(context.Background(), Function{Name: "t", Source: src}, req, Limits{})
	want := `{"byte":255,"h":"v","len":3,"method":"PUT","path":"/","payload":{"n":1,"tags":[]},"q":"1","tags_is_array":true,"trigger":"api"}`
	if res.Status != Succeeded || string(res.Value) != want {
		t.Fatalf("got %s %s %s\nwant %s", res.Status, res.Error, res.Value, want)
	}

	res = p.Run(context.Background(), Function{Name: "t", Source: `function handle(req) return req.payload == nil end`}, Request{}, Limits{})
	if string(res.Value) != "true" {
		t.Errorf("payload without Payload: %s %s", res.Value, res.Error)
	}
	res = p.Run(context.Background(), Function{Name: "t", Source: src}, Request{Payload: json.RawMessage(`{`)}, Limits{})
	if res.Status != Failed || !strings.Contains(res.Error, "request payload: invalid JSON") {
		t.Errorf("bad payload: %s %q", res.Status, res.Error)
	}
}

func TestLogs(t *testing.T) {
	p := newTestPool(t, 1)
	res := runSource(t, p, `function handle(req)
  print("a", 1, nil, true, setmetatable({}, {__tostring = function() return "T" end}))
  print()
  log.debug("d") log.info("i") log.warn("w") log.error("e", 2)
  print("nul\0byte", "bad\255utf8")
end`)
	want := []string{"info:a\t1\tnil\ttrue\tT", "info:", "debug:d", "info:i", "warn:w", "error:e\t2", "info:nul\ufffdbyte\tbad\ufffdutf8"}
	if got := logMessages(res); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("logs = %q\nwant %q", got, want)
	}
	for _, e := range res.Logs {
		if e.Time.IsZero() {
			t.Error("log entry without time")
		}
	}

	t.Run("entry cap", func(t *testing.T) {
		res := runSource(t, p, `function handle() for i = 1, 5000 do print(i) end return "done" end`)
		if res.Status != Succeeded || len(res.Logs) != maxLogEntries+1 {
			t.Fatalf("status %s, %d entries", res.Status, len(res.Logs))
		}
		last := res.Logs[len(res.Logs)-1]
		if last.Level != "warn" || !strings.HasPrefix(last.Message, "log truncated") || res.Logs[maxLogEntries-1].Message != "1000" {
			t.Errorf("last entries: %+v %+v", res.Logs[maxLogEntries-1], last)
		}
	})
	t.Run("byte cap", func(t *testing.T) {
		res := runSource(t, p, `function handle() for i = 1, 100 do print(string.rep("x", 10000)) end end`)
		total := 0
		for _, e := range res.Logs[:len(res.Logs)-1] {
			total += len(e.Message)
		}
		if total != maxLogBytes || len(res.Logs) != 8 || !strings.HasPrefix(res.Logs[7].Message, "log truncated") {
			t.Errorf("%d entries, %d bytes", len(res.Logs), total)
		}
		res = runSource(t, p, `function handle() print(string.rep("x", 65536)) print("y") print("z") end`)
		if len(res.Logs) != 2 || len(res.Logs[0].Message) != maxLogBytes || !strings.HasPrefix(res.Logs[1].Message, "log truncated") {
			t.Errorf("exact fill: %d entries", len(res.Logs))
		}
	})
	t.Run("print does not reach stdout", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		old := os.Stdout
		os.Stdout = w
		runSource(t, p, `function handle() print("should not be seen") end`)
		os.Stdout = old
		w.Close()
		out, _ := io.ReadAll(r)
		if len(out) != 0 {
			t.Errorf("stdout got %q", out)
		}
	})
}

func TestSandboxFloor(t *testing.T) {
	p := newTestPool(t, 1)
	absent := []string{
		"load", "loadstring", "loadfile", "dofile", "require", "collectgarbage", "module", "unpack",
		"io", "debug", "package", "coroutine",
		"os.execute", "os.exit", "os.getenv", "os.remove", "os.rename", "os.tmpname", "os.setlocale",
		"string.dump",
	}
	for _, name := range absent {
		t.Run(name, func(t *testing.T) {
			res := runSource(t, p, "function handle() return "+name+" == nil end")
			if string(res.Value) != "true" {
				t.Errorf("%s is reachable: %s %s", name, res.Value, res.Error)
			}
		})
	}
	present := []string{
		"assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "print", "rawequal",
		"rawget", "rawlen", "rawset", "select", "setmetatable", "tonumber", "tostring", "type", "xpcall",
		"string.format", "string.rep", "table.concat", "table.sort", "math.floor", "math.random",
		"bit32.band", "os.time", "os.clock", "os.date", "json.encode", "json.decode", "log.info",
	}
	for _, name := range present {
		t.Run(name, func(t *testing.T) {
			res := runSource(t, p, "function handle() return type("+name+") end")
			if string(res.Value) != `"function"` {
				t.Errorf("%s: %s %s", name, res.Value, res.Error)
			}
		})
	}

	checks := []struct {
		name, expr, want string
	}{
		{"string metatable hidden", `getmetatable("")`, "false"},
		{"string metatable locked", `pcall(setmetatable, getmetatable(""), {})`, "false"},
		{"env metatable hidden", `getmetatable(_G)`, "false"},
		{"_G is the env", `_G == _ENV`, "true"},
		{"library metatable hidden", `getmetatable(string)`, "false"},
		{"cannot replace library metatable", `pcall(setmetatable, string, nil)`, "false"},
		{"cannot replace env metatable", `pcall(setmetatable, _G, nil)`, "false"},
		{"json.array respects protection", `pcall(json.array, string)`, "false"},
		{"string methods work", `("abc"):upper()`, `"ABC"`},
		{"string.rep bounded", `select(2, pcall(string.rep, "x", 2^40))`, `"resulting string too large (limit 16777216 bytes)"`},
		{"table.concat", `table.concat({1, "b", 3}, "-", 1, 3)`, `"1-b-3"`},
		{"os.clock is per invocation", `os.clock() < 1`, "true"},
		{"math.random range", `(function() for i = 1, 1000 do local r = math.random(3, 5) if r < 3 or r > 5 or r % 1 ~= 0 then return r end end return "ok" end)()`, `"ok"`},
		{"math.randomseed is deterministic", `(function() math.randomseed(7) local a = math.random() math.randomseed(7) return a == math.random() end)()`, "true"},
		{"pairs over a library", `(function() local n = 0 for k, v in pairs(math) do n = n + 1 end return n > 20 end)()`, "true"},
		{"error with a table", `select(2, pcall(error, {}))`, `{}`},
		{"error with level 0", `select(2, pcall(error, "m", 0))`, `"m"`},
		{"xpcall handler", `select(2, xpcall(function() error("x") end, function(e) return "handled " .. e end))`, `"handled t:1: x"`},
		{"xpcall passes arguments", `select(2, xpcall(function(a, b) return a + b end, print, 2, 3))`, "5"},
		{"pcall success values", `select("#", pcall(function() return 1, 2 end))`, "3"},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			res := runSource(t, p, "function handle() return "+c.expr+" end")
			if res.Status != Succeeded || string(res.Value) != c.want {
				t.Errorf("%s = %s (%s %s), want %s", c.expr, res.Value, res.Status, res.Error, c.want)
			}
		})
	}

	t.Run("binary chunks refused", func(t *testing.T) {
		// A precompiled chunk starts with ESC "Lua"; text mode must refuse
		// it before the (unsafe) undump code runs.
		bin := "\x1bLuaR\x00\x01\x04\x08\x04\x08\x00\x19\x93\r\n\x1a\n"
		err := Compile("bin", bin)
		var se *SyntaxError
		if !errors.As(err, &se) || !strings.Contains(se.Message, "attempt to load a binary chunk") {
			t.Fatalf("Compile = %v", err)
		}
		res := p.Run(context.Background(), Function{Name: "bin", Source: bin}, Request{}, Limits{})
		if res.Status != Failed || !strings.Contains(res.Error, "binary chunk") {
			t.Errorf("Run = %s %q", res.Status, res.Error)
		}
	})
}

// TestIsolation proves that nothing one invocation does to globals, library
// tables or shared metatables is visible to the next one on the same state.
func TestIsolation(t *testing.T) {
	p := newTestPool(t, 1)
	polluter := `
leaked = "global"
function handle(req)
  _G.leaked2 = 1
  rawset(_G, "leaked3", 1)
  string.rep = nil
  string.x = 1
  function string.trim(s) return s end
  string.upper = function() return "poisoned" end
  assert(("x"):upper() == "poisoned" and ("x"):trim() == "x", "string methods do not see the overlay")
  rawset(string, "y", 2)
  table.insert(string, "z")
  math.pi = 3
  os.time = function() return 0 end
  json.encode = nil
  log.info = print
  print = nil
  getmetatable(json.array()).__index = function() return "poisoned" end
  pcall(function() getmetatable("").__index.upper = nil end)
  pcall(setmetatable, _G, {__index = function() return "poisoned" end})
  math.randomseed(42)
  return "polluted"
end`
	checker := `
function handle(req)
  local problems = {}
  local function check(ok, what) if not ok then problems[#problems + 1] = what end end
  check(leaked == nil, "global from top level")
  check(leaked2 == nil and leaked3 == nil, "global from handle")
  check(type(string.rep) == "function", "string.rep removed")
  check(string.x == nil and string.trim == nil and string.y == nil and string[1] == nil, "string fields added")
  check(math.pi > 3.14, "math.pi changed")
  check(os.time() > 1e9, "os.time replaced")
  check(type(json.encode) == "function", "json.encode removed")
  check(log.info ~= print, "log.info replaced")
  check(type(print) == "function", "print removed")
  check(getmetatable(json.array()).__index == nil, "array metatable poisoned")
  check(("x"):upper() == "X", "string methods changed")
  check(("x").trim == nil and ("x").x == nil, "string methods added")
  check(undefined_name == nil, "env metatable replaced")
  return problems
end`
	for i := range 2 { // twice, to also catch leaks that need a cache hit
		res := runSource(t, p, polluter)
		if res.Status != Succeeded {
			t.Fatalf("polluter: %s %s", res.Status, res.Error)
		}
		res = p.Run(context.Background(), Function{Name: "checker", Version: 1, Source: checker}, Request{}, Limits{})
		if res.Status != Succeeded || string(res.Value) != "{}" {
			t.Fatalf("round %d: leaks: %s %s", i, res.Value, res.Error)
		}
	}

	// The same function must also start clean each time, even with its
	// compiled chunk reused from the cache.
	counter := Function{Name: "counter", Version: 1, Source: `n = (n or 0) + 1
function handle() count = (count or 0) + 1 return {n = n, count = count} end`}
	for range 3 {
		res := p.Run(context.Background(), counter, Request{}, Limits{})
		if string(res.Value) != `{"count":1,"n":1}` {
			t.Fatalf("counter: %s %s", res.Value, res.Error)
		}
	}

	// math.randomseed in one invocation must not make the next predictable.
	seeded := `function handle() math.randomseed(1) return math.random(1, 1e9) end`
	next := `function handle() return math.random(1, 1e9) end`
	a := runSource(t, p, seeded)
	b := p.Run(context.Background(), Function{Name: "n", Source: next}, Request{}, Limits{})
	c := p.Run(context.Background(), Function{Name: "n", Source: next}, Request{}, Limits{})
	if string(b.Value) == string(a.Value) || string(b.Value) == string(c.Value) {
		t.Errorf("random values after randomseed: %s %s %s", a.Value, b.Value, c.Value)
	}
}

func TestLimits(t *testing.T) {
	p := newTestPool(t, 1)
	big := Limits{Timeout: 200 * time.Millisecond, Instructions: 1 << 50}
	budget := Limits{Timeout: 30 * time.Second, Instructions: 2_000_000}
	// boundedBy proves a run is stopped rather than left to its 30 s
	// timeout; it is loose because the race detector and a shared machine
	// slow error-heavy loops by an order of magnitude.
	const boundedBy = 15 * time.Second
	tests := []struct {
		name   string
		src    string
		limits Limits
		err    string
	}{
		{"timeout", `function handle() while true do end end`, big, "timed out after 200ms"},
		{"budget", `function handle() while true do end end`, budget, "instruction budget exhausted (2000000 VM instructions)"},
		{"budget at top level", `while true do end`, budget, "instruction budget exhausted"},
		{"pcall loop", `function handle() while true do pcall(function() while true do end end) end end`, budget, "instruction budget exhausted"},
		{"nested pcall", `function handle() while true do pcall(pcall, pcall, function() while true do end end) end end`, budget, "instruction budget exhausted"},
		{"pcall timeout", `function handle() while true do pcall(function() while true do end end) end end`, big, "timed out"},
		{"xpcall loop", `function handle() while true do xpcall(function() while true do end end, function(e) return e end) end end`, budget, "instruction budget exhausted"},
		{"xpcall handler loops", `function handle() return xpcall(error, function() while true do end end) end`, budget, "instruction budget exhausted"},
		{"xpcall handler recursion", `function handle() local h h = function(e) return select(2, xpcall(error, h)) end return xpcall(error, h) end`, budget, ""},
		{"error in loop caught", `function handle() while true do pcall(error, "x") end end`, budget, "instruction budget exhausted"},
		{"sort comparator", `function handle() table.sort({3, 2, 1}, function(a, b) while true do end end) end`, budget, "instruction budget exhausted"},
		{"__tostring in print", `function handle() print(setmetatable({}, {__tostring = function() while true do end end})) end`, budget, "instruction budget exhausted"},
		{"__index loop", `function handle() local t = setmetatable({}, {__index = function() while true do end end}) return t.x end`, budget, "instruction budget exhausted"},
		{"recursion", `local function f(n) return f(n + 1) end function handle() return f(1) end`, budget, "instruction budget exhausted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			res := p.Run(context.Background(), Function{Name: "t", Source: tt.src}, Request{}, tt.limits)
			elapsed := time.Since(start)
			if tt.err == "" { // any outcome is fine as long as it ends in time
				if elapsed > boundedBy {
					t.Errorf("took %v", elapsed)
				}
				return
			}
			if res.Status != TimedOut || !strings.Contains(res.Error, tt.err) {
				t.Fatalf("got %s %q, want timed_out with %q", res.Status, res.Error, tt.err)
			}
			wantLimit := LimitTimeout
			if strings.Contains(tt.err, "instruction") {
				wantLimit = LimitInstructions
			}
			if res.Limit != wantLimit {
				t.Errorf("Limit = %q, want %q", res.Limit, wantLimit)
			}
			if elapsed > boundedBy {
				t.Errorf("took %v", elapsed)
			}
		})
	}

	t.Run("timeout precision", func(t *testing.T) {
		start := time.Now()
		res := p.Run(context.Background(), exampleFunction(t, "loop"), Request{}, Limits{Timeout: 300 * time.Millisecond, Instructions: 1 << 50})
		if elapsed := time.Since(start); res.Status != TimedOut || elapsed < 300*time.Millisecond || elapsed > 3*time.Second {
			t.Errorf("%s after %v", res.Status, elapsed)
		}
	})

	t.Run("context cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		res := p.Run(ctx, exampleFunction(t, "loop"), Request{}, Limits{Timeout: 30 * time.Second, Instructions: 1 << 50})
		if res.Status != Cancelled || res.Error != "loop: cancelled: context canceled" || time.Since(start) > 10*time.Second {
			t.Errorf("got %s %q after %v", res.Status, res.Error, time.Since(start))
		}
	})

	t.Run("context cause", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(context.Background())
		time.AfterFunc(50*time.Millisecond, func() { cancel(errors.New("worker shutting down")) })
		res := p.Run(ctx, exampleFunction(t, "loop"), Request{}, Limits{Timeout: 30 * time.Second, Instructions: 1 << 50})
		if res.Status != Cancelled || !strings.Contains(res.Error, "worker shutting down") {
			t.Errorf("got %s %q", res.Status, res.Error)
		}
	})

	t.Run("context deadline is a timeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		res := p.Run(ctx, exampleFunction(t, "loop"), Request{}, Limits{Timeout: 30 * time.Second, Instructions: 1 << 50})
		if res.Status != TimedOut || !strings.Contains(res.Error, "deadline exceeded") {
			t.Errorf("got %s %q", res.Status, res.Error)
		}
	})

	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		res := p.Run(ctx, exampleFunction(t, "hello"), Request{}, Limits{})
		if res.Status != Cancelled || !strings.Contains(res.Error, "waiting for a free Lua state") {
			t.Errorf("got %s %q", res.Status, res.Error)
		}
	})

	t.Run("cancel while waiting", func(t *testing.T) {
		started := make(chan struct{})
		done := make(chan Result)
		go func() {
			close(started)
			done <- p.Run(context.Background(), exampleFunction(t, "loop"), Request{}, Limits{Timeout: 400 * time.Millisecond, Instructions: 1 << 50})
		}()
		<-started
		time.Sleep(50 * time.Millisecond) // let the loop take the only state
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		res := p.Run(ctx, exampleFunction(t, "hello"), Request{}, Limits{})
		if res.Status != TimedOut || !strings.Contains(res.Error, "waiting for a free Lua state") || res.Duration != 0 {
			t.Errorf("got %s %q %v", res.Status, res.Error, res.Duration)
		}
		if r := <-done; r.Status != TimedOut {
			t.Errorf("loop: %s %q", r.Status, r.Error)
		}
	})

	// After all of these aborts the pool must still work.
	if res := p.Run(context.Background(), exampleFunction(t, "hello"), Request{}, Limits{}); res.Status != Succeeded {
		t.Fatalf("pool broken after aborts: %s %s", res.Status, res.Error)
	}
}

func TestGoPanicsAreContained(t *testing.T) {
	p := newTestPool(t, 1)
	p.extend = func(s *state) {
		// Globals that fail the way go-lua's own bugs do: a panic with a
		// non-error value (like debug.sethook's "XMove not implemented")
		// and a Go runtime error.
		s.l.Field(lua.RegistryIndex, registryKey)
		s.l.RawGetInt(-1, slotBase)
		crash := func(*lua.State) int { panic("XMove not implemented") }
		s.l.PushGoFunction(s.guard("crash_string", crash))
		s.l.SetField(-2, "crash_string")
		s.l.PushGoFunction(s.guard("crash_runtime", func(*lua.State) int {
			var m map[string]int
			m["x"] = 1 //nolint:staticcheck // a nil map write is the runtime error under test
			return 0
		}))
		s.l.SetField(-2, "crash_runtime")
		// Unguarded, like a panic inside the VM itself: go-lua's protect
		// replaces the value with a type-assertion error.
		s.l.PushGoFunction(crash)
		s.l.SetField(-2, "crash_unguarded")
		s.l.SetTop(0)
	}
	hello := exampleFunction(t, "hello")
	tests := []struct{ name, src, err string }{
		{"select empty string", `function handle() return select("") end`, "internal error in the Lua runtime: select: panic: runtime error: index out of range"},
		{"select under pcall", `function handle() local ok = pcall(select, "") return "caught" end`, "internal error in the Lua runtime"},
		{"under xpcall", `function handle() return xpcall(select, print, "") end`, "internal error in the Lua runtime"},
		{"string panic", `function handle() crash_string() end`, "internal error in the Lua runtime: crash_string: panic: XMove not implemented"},
		{"string panic under pcall", `function handle() pcall(crash_string) return "caught" end`, "internal error in the Lua runtime"},
		{"runtime error panic", `function handle() crash_runtime() end`, "assignment to entry in nil map"},
		{"panic at top level", `crash_string()`, "XMove not implemented"},
		{"unguarded panic", `function handle() crash_unguarded() end`, "internal error in the Lua runtime: panic: interface conversion"},
		{"unguarded panic under pcall", `function handle() pcall(crash_unguarded) return 1 end`, "internal error in the Lua runtime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := p.Run(context.Background(), Function{Name: "t", Source: tt.src}, Request{}, Limits{})
			if res.Status != Failed || !strings.Contains(res.Error, tt.err) {
				t.Fatalf("got %s %q, want failed with %q", res.Status, res.Error, tt.err)
			}
			if res := p.Run(context.Background(), hello, Request{}, Limits{}); res.Status != Succeeded || string(res.Response.Body) != "Hello, world!" {
				t.Fatalf("pool broken afterwards: %s %s", res.Status, res.Error)
			}
		})
	}
}

func TestStateReuse(t *testing.T) {
	p := newTestPool(t, 1)
	hello := exampleFunction(t, "hello")
	p.Run(context.Background(), hello, Request{}, Limits{})
	s := <-p.slots
	p.slots <- s
	if s == nil || s.chunks.len() != 1 {
		t.Fatalf("state not kept after a successful run")
	}
	// A Lua error leaves the state healthy; an abort replaces it.
	peek := func() *state {
		s := <-p.slots
		p.slots <- s
		return s
	}
	runSource(t, p, `function handle() error("x") end`)
	if peek() != s {
		t.Fatalf("state replaced after a Lua error")
	}
	p.Run(context.Background(), exampleFunction(t, "loop"), Request{}, Limits{Instructions: 1000})
	if peek() != nil {
		t.Fatalf("state kept after an abort")
	}
	if res := p.Run(context.Background(), hello, Request{}, Limits{}); res.Status != Succeeded {
		t.Fatalf("no fresh state: %s", res.Error)
	}
}

func TestChunkCache(t *testing.T) {
	c := newChunkCache(2)
	a1, _ := c.add(chunkKey{"a", 1}, "A")
	b1, _ := c.add(chunkKey{"b", 1}, "B")
	if id, ok := c.get(chunkKey{"a", 1}, "A"); !ok || id != a1 {
		t.Fatal("a missing")
	}
	_, evicted := c.add(chunkKey{"c", 1}, "C") // b is least recently used
	if fmt.Sprint(evicted) != fmt.Sprint([]int{b1}) {
		t.Fatalf("evicted %v, want [%d]", evicted, b1)
	}
	if _, ok := c.get(chunkKey{"b", 1}, "B"); ok {
		t.Fatal("b still cached")
	}
	if _, ok := c.get(chunkKey{"a", 1}, "changed"); ok {
		t.Fatal("stale source served")
	}
	_, evicted = c.add(chunkKey{"a", 2}, "A2") // replaces a@1
	if fmt.Sprint(evicted) != fmt.Sprint([]int{a1}) || c.len() != 2 {
		t.Fatalf("evicted %v, len %d", evicted, c.len())
	}

	// Through a pool: a new Version (or Source) runs the new code.
	p := newTestPool(t, 1)
	for v, want := range []string{`"one"`, `"two"`, `"three"`} {
		src := fmt.Sprintf("function handle() return %s end", want)
		res := p.Run(context.Background(), Function{Name: "f", Version: v / 2, Source: src}, Request{}, Limits{})
		if string(res.Value) != want {
			t.Errorf("version %d: %s %s, want %s", v/2, res.Value, res.Error, want)
		}
	}
}

func TestCompile(t *testing.T) {
	tests := []struct {
		name, src string
		line      int
		msg       string // substring of Message
	}{
		{"ok", "function handle(req) return 1 end", 0, ""},
		{"empty", "", 0, ""},
		{"unexpected symbol", "local x = 1\n\nx = = 2\n", 3, "unexpected symbol near ="},
		{"missing end", "function handle(req)\n  if x then\n    return 1\nend\n", 5, "'end' expected (to close 'function' at line 1) near <eof>"},
		{"unfinished string", "local a = 1\nlocal s = 'abc\nlocal b", 2, "unfinished string"},
		{"binary", "\x1bLua", 1, "attempt to load a binary chunk (mode is 't')"},
		{"bad goto", "goto nowhere", 1, "no visible label 'nowhere'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Compile("fn", tt.src)
			if tt.line == 0 {
				if err != nil {
					t.Fatalf("Compile = %v", err)
				}
				return
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Compile = %#v, want *SyntaxError", err)
			}
			if se.Line != tt.line || !strings.Contains(se.Message, tt.msg) {
				t.Errorf("got line %d %q, want line %d %q", se.Line, se.Message, tt.line, tt.msg)
			}
			if want := fmt.Sprintf("line %d: %s", se.Line, se.Message); se.Error() != want {
				t.Errorf("Error() = %q, want %q", se.Error(), want)
			}
		})
	}

	t.Run("long name", func(t *testing.T) {
		name := strings.Repeat("n", 100)
		var se *SyntaxError
		if err := Compile(name, "\n\nx ="); !errors.As(err, &se) || se.Line != 3 {
			t.Fatalf("Compile = %v", err)
		}
	})

	t.Run("shown by Run", func(t *testing.T) {
		p := newTestPool(t, 1)
		res := p.Run(context.Background(), Function{Name: "broken", Source: "function handle()\n  return 1 +\nend"}, Request{}, Limits{})
		if res.Status != Failed || !strings.HasPrefix(res.Error, "broken: syntax error: line 3: unexpected symbol near 'end'") {
			t.Fatalf("got %s %q", res.Status, res.Error)
		}
	})

	t.Run("runtime errors carry the name", func(t *testing.T) {
		p := newTestPool(t, 1)
		res := p.Run(context.Background(), Function{Name: "my-fn", Source: "function handle()\n\n  error('boom')\nend"}, Request{}, Limits{})
		if res.Error != "my-fn:3: boom" {
			t.Fatalf("got %q", res.Error)
		}
		res = p.Run(context.Background(), Function{Name: "my-fn", Version: 2, Source: "local x = 1"}, Request{}, Limits{})
		if res.Error != "my-fn: handle is not defined; define function handle(req)" {
			t.Fatalf("got %q", res.Error)
		}
		res = p.Run(context.Background(), Function{Name: "my-fn", Version: 3, Source: "handle = 5"}, Request{}, Limits{})
		if !strings.HasPrefix(res.Error, "my-fn: handle is a number, not a function") {
			t.Fatalf("got %q", res.Error)
		}
	})
}

func TestOSDate(t *testing.T) {
	p := newTestPool(t, 1)
	// 2009-02-13 23:31:30 UTC, a Friday, day 44 of the year.
	tests := []struct{ format, want string }{
		{"%Y-%m-%d %H:%M:%S", "2009-02-13 23:31:30"},
		{"!%Y-%m-%dT%H:%M:%SZ", "2009-02-13T23:31:30Z"},
		{"%c", "Fri Feb 13 23:31:30 2009"},
		{"%a %A %b %B %h", "Fri Friday Feb February Feb"},
		{"%d %e %j %m %y %C %G %g %V", "13 13 044 02 09 20 2009 09 07"},
		{"%I %p %r %R %T %X %x %D %F", "11 PM 11:31:30 PM 23:31 23:31:30 23:31:30 02/13/09 02/13/09 2009-02-13"},
		{"%u %w %U %W %z %Z %s %%", "5 5 06 06 +0000 UTC 1234567890 %"},
		{"%Ey %Od", "09 13"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			res := runSource(t, p, fmt.Sprintf("function handle() return os.date(%q, 1234567890) end", tt.format))
			if string(res.Response.Body) != tt.want {
				t.Errorf("got %q (%s), want %q", res.Response.Body, res.Error, tt.want)
			}
		})
	}
	res := runSource(t, p, `function handle()
  local t = os.date("*t", 1234567890)
  return {t.year, t.month, t.day, t.hour, t.min, t.sec, t.wday, t.yday, t.isdst, os.time(t), os.time({year = 2009, month = 2, day = 13}), os.date("!*t", 0).year}
end`)
	if want := "[2009,2,13,23,31,30,6,44,false,1234567890,1234526400,1970]"; string(res.Value) != want {
		t.Errorf("*t: %s %s, want %s", res.Value, res.Error, want)
	}
	for _, expr := range []string{`os.date("%Q")`, `os.date("%")`, `os.time({year = 2000})`} {
		if res := runSource(t, p, "function handle() return "+expr+" end"); res.Status != Failed {
			t.Errorf("%s: %s %s", expr, res.Status, res.Value)
		}
	}
	res = runSource(t, p, `function handle() return math.abs(os.time() - tonumber(os.date("%s"))) <= 1 end`)
	if string(res.Value) != "true" {
		t.Errorf("os.time vs os.date: %s %s", res.Value, res.Error)
	}
}

func TestConcurrentRuns(t *testing.T) {
	p := newTestPool(t, 2)
	hello, echo, errFn := exampleFunction(t, "hello"), exampleFunction(t, "echo"), exampleFunction(t, "error")
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for g := range 6 {
		wg.Go(func() {
			for i := range 20 {
				name := fmt.Sprintf("g%d-%d", g, i)
				switch i % 3 {
				case 0:
					res := p.Run(context.Background(), hello, Request{Query: map[string]string{"name": name}}, Limits{})
					if string(res.Response.Body) != "Hello, "+name+"!" || len(res.Logs) != 1 || res.Logs[0].Message != "greeting "+name {
						errs <- fmt.Sprintf("hello %s: %s %q %v", name, res.Status, res.Response.Body, res.Logs)
					}
				case 1:
					res := p.Run(context.Background(), echo, Request{Method: "POST", Body: []byte(`{"n":"` + name + `"}`)}, Limits{})
					if !strings.Contains(string(res.Response.Body), `"body":{"n":"`+name+`"}`) {
						errs <- fmt.Sprintf("echo %s: %s %s", name, res.Status, res.Response.Body)
					}
				case 2:
					res := p.Run(context.Background(), errFn, Request{}, Limits{})
					if res.Status != Failed || !strings.HasPrefix(res.Error, "error:6:") {
						errs <- fmt.Sprintf("error %s: %s %s", name, res.Status, res.Error)
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestClose(t *testing.T) {
	p := NewPool(Config{Size: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	done := make(chan Result)
	go func() {
		done <- p.Run(context.Background(), exampleFunction(t, "loop"), Request{}, Limits{Timeout: 200 * time.Millisecond, Instructions: 1 << 50})
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	p.Close()
	if time.Since(start) < 50*time.Millisecond {
		t.Errorf("Close did not wait for the running invocation")
	}
	if res := <-done; res.Status != TimedOut {
		t.Errorf("running invocation: %s %s", res.Status, res.Error)
	}
	if res := p.Run(context.Background(), exampleFunction(t, "hello"), Request{}, Limits{}); res.Status != Failed || res.Error != "executor: pool is closed" {
		t.Errorf("after Close: %s %q", res.Status, res.Error)
	}
	p.Close() // idempotent
}

func ExamplePool_Run() {
	pool := NewPool(Config{Size: 1})
	defer pool.Close()

	fn := Function{Name: "greet", Version: 1, Source: `
function handle(req)
  log.info("method", req.method)
  return {status = 201, body = {greeting = "hi " .. (req.query.name or "there")}}
end`}
	res := pool.Run(context.Background(), fn, Request{Trigger: "http", Method: "POST", Query: map[string]string{"name": "Ada"}}, Limits{Timeout: time.Second})

	fmt.Println(res.Status, res.Response.Status, res.Response.Headers["Content-Type"])
	fmt.Println(string(res.Response.Body))
	fmt.Println(string(res.Value))
	fmt.Println(res.Logs[0].Level, res.Logs[0].Message)

	res = pool.Run(context.Background(), Function{Name: "oops", Version: 1, Source: "function handle(req)\n  error(\"name is required\")\nend"}, Request{}, Limits{})
	fmt.Println(res.Status, res.Error)
	// Output:
	// succeeded 201 application/json
	// {"greeting":"hi Ada"}
	// {"body":{"greeting":"hi Ada"},"status":201}
	// info method	POST
	// failed oops:2: name is required
}
