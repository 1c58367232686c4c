package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Fuzz targets for the executor. Seeds come from f.Add, testdata/fuzz (the
// inputs that found bugs) and, for FuzzRun, the hostile suite and the
// example functions. Run one with, for example,
//
//	go test -run '^$' -fuzz FuzzRun -fuzztime 90s ./executor/

// FuzzCompile: Compile never panics or hangs, and a syntax error points at
// a line of the source.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		"function handle(req) return 1 end",
		"x = ",
		"local a <const> = 1",
		"\x1bLua",
		"--[==[ unterminated",
		"a = [[\n\n\nb",
		"goto x; ::x:: ::x::",
		"return " + strings.Repeat("(", 300) + "1" + strings.Repeat(")", 300),
		"local t = {" + strings.Repeat("1,", 1000) + "}",
		"a = 0x1p4 + 1e309 + 0x.8 + \"\\z \\x41\\u{48}\"",
		"\r\n\n\r\rx x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		defer watchdog(src)()
		start := time.Now()
		err := Compile("fuzz", src)
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("Compile took %v", took)
		}
		if err == nil {
			return
		}
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Fatalf("Compile returned %T %v, want *SyntaxError", err, err)
		}
		// Lua counts \n, \r, \r\n and \n\r as one line break each.
		maxLine := strings.Count(src, "\n") + strings.Count(src, "\r") + 1
		if se.Line < 1 || se.Line > maxLine {
			t.Fatalf("syntax error at line %d of a %d-line source: %v", se.Line, maxLine, se)
		}
		if se.Message == "" {
			t.Fatal("syntax error without a message")
		}
	})
}

// fuzzLimits keep one FuzzRun input to a few milliseconds.
var fuzzLimits = Limits{Instructions: 100_000, Timeout: time.Second}

// FuzzRun: any source, run under a small budget, gives a Result with a
// valid status and well-formed fields, and leaves the pool working. A Go
// panic reaching the test, a hang or an unbounded allocation in one library
// call is a bug; so is an "internal error" other than the go-lua traps
// known to be contained (see knownRuntimePanics).
func FuzzRun(f *testing.F) {
	for _, src := range fuzzRunSeeds(f) {
		f.Add(src)
	}
	p := NewPool(Config{Size: 1, Logger: discardLogger()})
	defer p.Close()
	probe := Function{Name: "probe", Version: 1, Source: "function handle() return 1 end"}
	f.Fuzz(func(t *testing.T, src string) {
		defer watchdog(src)()
		start := time.Now()
		res := p.Run(context.Background(), Function{Name: "fuzz", Version: 1, Source: src},
			Request{Method: "POST", Path: "/f", Body: []byte(`{"a":[1,2]}`), Payload: json.RawMessage(`{"p":true}`)}, fuzzLimits)
		if took := time.Since(start); took > fuzzLimits.Timeout+4*time.Second {
			t.Errorf("run took %v (status %s, error %.200q)", took, res.Status, res.Error)
		}
		checkResult(t, res)
		if strings.Contains(res.Error, "internal error in the Lua runtime") && !knownRuntimePanic(res.Error) {
			t.Errorf("new Go panic in the Lua runtime: %s", res.Error)
		}
		if after := p.Run(context.Background(), probe, Request{}, Limits{}); after.Status != Succeeded || string(after.Value) != "1" {
			t.Fatalf("pool broken after the input: %s %q %s", after.Status, after.Error, after.Value)
		}
	})
}

// watchdog crashes the process if the caller has not returned within 30
// seconds: the fuzzing engine then keeps the input that hung, which a
// timing check after the call could never report.
func watchdog(input string) (stop func()) {
	timer := time.AfterFunc(30*time.Second, func() {
		panic(fmt.Sprintf("no result after 30 s for input %.300q", input))
	})
	return func() { timer.Stop() }
}

// knownRuntimePanics are go-lua bugs that the guard contains (the run fails,
// the state is rebuilt) and that the executor deliberately leaves in place.
var knownRuntimePanics = []string{
	"select: panic: runtime error: index out of range", // select("") and select("x")
}

func knownRuntimePanic(msg string) bool {
	for _, k := range knownRuntimePanics {
		if strings.Contains(msg, k) {
			return true
		}
	}
	return false
}

// checkResult checks the promises of Result: a valid status, an error
// exactly when the run did not succeed, JSON in Value, a response in range,
// and logs that are valid UTF-8 without NUL bytes.
func checkResult(t *testing.T, res Result) {
	t.Helper()
	switch res.Status {
	case Succeeded:
		if res.Error != "" {
			t.Errorf("succeeded with error %q", res.Error)
		}
		if !json.Valid(res.Value) {
			t.Errorf("Value is not JSON: %.200q", res.Value)
		}
		if res.Response.Status < 100 || res.Response.Status > 599 || res.Response.Headers == nil {
			t.Errorf("bad response %d %v", res.Response.Status, res.Response.Headers)
		}
		for k, v := range res.Response.Headers {
			if !validHeaderName(k) || !validHeaderValue(v) {
				t.Errorf("bad response header %q: %q", k, v)
			}
		}
	case Failed, TimedOut:
		if res.Error == "" {
			t.Errorf("%s without an error", res.Status)
		}
	default:
		t.Errorf("status %q", res.Status)
	}
	for _, e := range res.Logs {
		if !utf8.ValidString(e.Message) || strings.Contains(e.Message, "\x00") {
			t.Errorf("log message not clean UTF-8: %.100q", e.Message)
		}
		if e.Fields != nil && !json.Valid(e.Fields) {
			t.Errorf("log fields not JSON: %.100q", e.Fields)
		}
	}
}

// fuzzRunSeeds are the example functions and the hostile files that can run
// in-process (the others may exhaust memory, which only a sandbox child can
// survive), plus a few shapes the fuzzer would take long to find.
func fuzzRunSeeds(f *testing.F) []string {
	seeds := []string{
		`function handle(req) return req end`,
		`function handle(req) return {status = 201, headers = {["X-A"] = "b"}, body = {x = json.array()}} end`,
		`function handle(req) return (("%d"):rep(3)):format(1, 2, 3):gsub("%d", {["1"] = "one"}) end`,
		`function handle(req) local t = setmetatable({}, {__index = function(t, k) return k end}) return t.x .. #req.body end`,
		`function handle(req) for k, v in pairs(string) do log.info(k, {v = type(v)}) end return os.date("*t", 0) end`,
		`function handle(req) return pcall(error, setmetatable({}, {__tostring = function() return "x" end})) end`,
	}
	var files []string
	for _, pattern := range []string{"../testdata/functions/*.lua", "../testdata/hostile/*.lua"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		files = append(files, m...)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		if strings.Contains(string(b), "\n-- sandbox: process") {
			continue
		}
		seeds = append(seeds, string(b))
	}
	return seeds
}

// roundTripFunction decodes the body with json.decode and encodes it again;
// payloadFunction returns the request payload, which the executor decodes
// before handle runs and encodes as Result.Value.
var (
	roundTripFunction = Function{Name: "roundtrip", Version: 1, Source: `function handle(req)
  return {status = 200, headers = {["content-type"] = "application/json"}, body = json.encode(json.decode(req.body))}
end`}
	payloadFunction = Function{Name: "payload", Version: 1, Source: `function handle(req) return json.array({req.payload}) end`}
)

// FuzzJSONRoundTrip: JSON text goes into Lua and back out through the
// executor (json.decode then json.encode in a script; and a request payload
// returned as the result) without a panic, and valid JSON keeps its meaning,
// apart from what a Lua table cannot hold: null members, trailing nulls.
func FuzzJSONRoundTrip(f *testing.F) {
	for _, s := range []string{
		`{"a":[1,2,{"b":null}],"c":"\u00e9","d":-1.5e-3}`, `{"":{"":[]}}`, `{"1":"x","2":"y"}`,
		`{"a":[null,null,3,null]}`, `{"n":123456789012345678901234567890}`, `{"s":"\ud800\udc00\ud800"}`,
		"{\"x\":\"\xff\xfe\"}", `{"e":1E+2,"f":-0,"g":0.1}`, `[]`, `"x"`, `null`, `{"a":1,"a":2}`,
		`{"status":200,"body":"hi"}`, `{` + strings.Repeat(`"a":{`, 127) + `}` + strings.Repeat(`}`, 127),
	} {
		f.Add([]byte(s))
	}
	p := NewPool(Config{Size: 1, Logger: discardLogger()})
	defer p.Close()
	limits := Limits{Timeout: 10 * time.Second}
	f.Fuzz(func(t *testing.T, in []byte) {
		defer watchdog(string(in))()
		var want any
		valid := json.Unmarshal(in, &want) == nil

		res := p.Run(context.Background(), roundTripFunction, Request{Body: in}, limits)
		checkResult(t, res)
		switch {
		case !valid && res.Status == Succeeded:
			t.Fatalf("json.decode accepted %q, which encoding/json rejects; got %s", in, res.Response.Body)
		case !valid:
			if !strings.Contains(res.Error, "json.decode: ") {
				t.Fatalf("invalid JSON %q: %s %q", in, res.Status, res.Error)
			}
		case res.Status != Succeeded:
			if !strings.Contains(res.Error, "nesting too deep") {
				t.Fatalf("valid JSON %q: %s %q", in, res.Status, res.Error)
			}
		default:
			sameJSON(t, "json.decode/json.encode", in, res.Response.Body, want)
		}

		if !valid {
			return
		}
		res = p.Run(context.Background(), payloadFunction, Request{Payload: in}, limits)
		checkResult(t, res)
		if res.Status != Succeeded {
			if !strings.Contains(res.Error, "nesting too deep") {
				t.Fatalf("payload %q: %s %q", in, res.Status, res.Error)
			}
			return
		}
		var wrapped []json.RawMessage
		if err := json.Unmarshal(res.Value, &wrapped); err != nil || len(wrapped) > 1 {
			t.Fatalf("payload %q came back as %s", in, res.Value)
		}
		out := json.RawMessage("null")
		if len(wrapped) == 1 {
			out = wrapped[0]
		}
		sameJSON(t, "payload", in, out, want)
	})
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func sameJSON(t *testing.T, path string, in, out []byte, want any) {
	t.Helper()
	var got any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%s: output %q of %q is not JSON: %v", path, out, in, err)
	}
	if !reflect.DeepEqual(dropNulls(got), dropNulls(want)) {
		t.Fatalf("%s: %q came back as %q", path, in, out)
	}
}

// dropNulls removes what a Lua table cannot hold: null object members and
// trailing null array elements. An array left empty stays an array.
func dropNulls(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := map[string]any{}
		for k, e := range v {
			if e != nil {
				m[k] = dropNulls(e)
			}
		}
		return m
	case []any:
		n := len(v)
		for n > 0 && v[n-1] == nil {
			n--
		}
		a := make([]any, n)
		for i := range n {
			a[i] = dropNulls(v[i])
		}
		return a
	}
	return v
}

// libraryCallFunction calls one library function, picked by req.query.which
// from every function the sandbox offers, with fuzzed strings (req.query.a
// and b), numbers (x and y, spliced into the source so that NaN and the
// infinities can occur) and a table, in several argument orders. Each call
// is under pcall: Lua errors are expected, Go panics and hangs are not.
const libraryCallSource = `
local libs = {"string", "table", "math", "bit32", "os", "json", "base64", "hex", "crypto", "uuid", "time", "log"}
local base = {"select", "tonumber", "tostring", "rawlen", "rawequal", "rawget", "rawset", "next", "ipairs",
  "pairs", "setmetatable", "getmetatable", "assert", "type", "error", "print"}
local names = {}
for _, lib in ipairs(libs) do
  for k, v in pairs(_ENV[lib]) do
    if type(v) == "function" then names[#names + 1] = lib .. "." .. k end
  end
end
table.sort(names)
for _, k in ipairs(base) do names[#names + 1] = k end

function handle(req)
  local a, b = req.query.a, req.query.b
  local x, y = X, Y
  local t = {a, b, x, y, n = x, [a] = b}
  local name = names[tonumber(req.query.which) % #names + 1]
  local lib, key = name:match("^(%w+)%.(%w+)$")
  local f = lib and _ENV[lib][key] or _ENV[name]
  local combos = {
    {n = 0}, {a, n = 1}, {x, n = 1}, {t, n = 1}, {a, b, n = 2}, {a, x, n = 2}, {x, y, n = 2}, {x, a, n = 2},
    {t, x, n = 2}, {t, a, n = 2}, {a, x, y, n = 3}, {a, b, x, n = 3}, {a, x, b, n = 3}, {t, x, y, n = 3},
    {t, a, x, n = 3}, {t, x, b, n = 3}, {a, b, x, y, n = 4}, {x, y, a, b, n = 4}, {t, x, y, a, n = 4},
    {a, nil, x, n = 3}, {nil, x, n = 2}, {a, t, n = 2}, {x, t, n = 2}, {a, b, t, n = 3},
  }
  for _, args in ipairs(combos) do
    pcall(f, table.unpack(args, 1, args.n))
  end
  return name
end`

func luaNumber(f float64) string {
	switch {
	case math.IsNaN(f):
		return "(0/0)"
	case math.IsInf(f, 1):
		return "(1/0)"
	case math.IsInf(f, -1):
		return "(-1/0)"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// FuzzLibraryCall: every library function, called with odd arguments,
// returns or raises a Lua error; none panics in Go, hangs or allocates
// without bound.
func FuzzLibraryCall(f *testing.F) {
	for i, s := range []struct {
		a, b string
		x, y float64
	}{
		{"%d%s", "x", 1, 2}, {"", "", math.NaN(), math.Inf(1)}, {"(a*)*b", "%1", -1, 1e300},
		{"\x00\xff", "%", 0, -0.5}, {"*t", "!%c", 1e10, -1e10}, {`{"a":[1]}`, "[", 2, 3},
		{"ab", ",", 1 << 24, 2}, {"x", "y", -(1 << 62), 1 << 62}, {"%99.99f", "z", 1e-300, 255},
	} {
		f.Add(uint16(i*7), s.a, s.b, s.x, s.y)
	}
	p := NewPool(Config{Size: 1, Logger: discardLogger()})
	defer p.Close()
	f.Fuzz(func(t *testing.T, which uint16, a, b string, x, y float64) {
		src := strings.NewReplacer("X, Y", luaNumber(x)+", "+luaNumber(y)).Replace(libraryCallSource)
		defer watchdog(fmt.Sprintf("which=%d a=%q b=%q x=%v y=%v", which, a, b, x, y))()
		start := time.Now()
		res := p.Run(context.Background(), Function{Name: "call", Version: 1, Source: src},
			Request{Query: map[string]string{"which": strconv.Itoa(int(which)), "a": a, "b": b}}, fuzzLimits)
		if took := time.Since(start); took > fuzzLimits.Timeout+4*time.Second {
			t.Errorf("run took %v (%s %.200q %s)", took, res.Status, res.Error, res.Value)
		}
		checkResult(t, res)
		switch {
		case strings.Contains(res.Error, "internal error in the Lua runtime") && !knownRuntimePanic(res.Error):
			t.Errorf("Go panic in a library function: %s", res.Error)
		case res.Status == Failed:
			t.Errorf("failed outside pcall: %s", res.Error)
		}
	})
}
