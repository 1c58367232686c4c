package executor

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// showPrelude defines show(...), which renders every value it gets, nils
// included, so a case can compare all results of a call: strings in double
// quotes (raw, not escaped), everything else through tostring, separated by
// commas.
const showPrelude = `
local function show(...)
  local t = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if type(v) == "string" then t[i] = '"' .. v .. '"' else t[i] = tostring(v) end
  end
  return table.concat(t, ",")
end
local function collect(iter)
  local t = {}
  for a, b in iter do
    if b ~= nil then t[#t + 1] = tostring(a) .. ":" .. tostring(b) else t[#t + 1] = tostring(a) end
  end
  return table.concat(t, "|")
end
`

// luaCase is one expression evaluated in a fresh invocation: either all of
// its values rendered by show must equal want, or it must raise an error
// whose message contains err. differs, when set, says why the reference
// interpreter (TestAgainstReferenceLua) gives another result on purpose.
type luaCase struct {
	expr    string
	want    string
	err     string
	differs string
}

func runLuaCases(t *testing.T, cases []luaCase) {
	t.Helper()
	p := newTestPool(t, 1)
	for _, c := range cases {
		t.Run(c.expr, func(t *testing.T) {
			var src string
			if c.err != "" {
				src = showPrelude + "function handle() return show(pcall(function() return " + c.expr + " end)) end"
			} else {
				src = showPrelude + "function handle() return show(" + c.expr + ") end"
			}
			res := runSource(t, p, src)
			if res.Status != Succeeded {
				t.Fatalf("%s: %s", res.Status, res.Error)
			}
			var got string
			if err := json.Unmarshal(res.Value, &got); err != nil {
				t.Fatalf("value %s: %v", res.Value, err)
			}
			if c.err != "" {
				if !strings.HasPrefix(got, "false,") || !strings.Contains(got, c.err) {
					t.Fatalf("got %s, want an error containing %q", got, c.err)
				}
				return
			}
			if got != c.want {
				t.Fatalf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

func TestPatterns(t *testing.T) {
	runLuaCases(t, patternCases)
}

func TestStringFunctions(t *testing.T) {
	runLuaCases(t, stringCases)
}

// TestConcatNumberFormat pins what the library side cannot fix: the VM's
// own number-to-string conversion for "..". If go-lua ever adopts C's
// spelling, this fails and doc.go and docs/functions.md should lose the caveat.
func TestConcatNumberFormat(t *testing.T) {
	p := newTestPool(t, 1)
	res := runSource(t, p, `function handle() return (1/0) .. "|" .. (-1/0) .. "|" .. 0.1 .. "|" .. 10 end`)
	if string(res.Value) != `"+Inf|-Inf|0.1|10"` {
		t.Errorf("concat = %s %s", res.Value, res.Error)
	}
}

func TestPrintNumberFormat(t *testing.T) {
	p := newTestPool(t, 1)
	res := runSource(t, p, `function handle() print(1/0, -1/0, 0.5, 3) log.info(-(0/0)) end`)
	if got := logMessages(res); len(got) != 2 || got[0] != "info:inf\t-inf\t0.5\t3" || got[1] != "info:nan" {
		t.Errorf("logs = %q (%s)", got, res.Error)
	}
}

func TestErrorValues(t *testing.T) {
	runLuaCases(t, errorValueCases)

	p := newTestPool(t, 1)
	uncaught := []struct{ src, want string }{
		{"function handle()\n error({code = 1})\nend", "t:2: (error object is a table value)"},
		{"function handle() error(setmetatable({}, {__tostring = function() return 'custom' end})) end", "t:1: custom"},
		{"function handle() error() end", "t:1: (error object is a nil value)"},
		{"function handle() error({}, 0) end", "(error object is a table value)"},
		{"function handle() error(true) end", "t:1: (error object is a boolean value)"},
	}
	for _, u := range uncaught {
		res := runSource(t, p, u.src)
		if res.Status != Failed || res.Error != u.want {
			t.Errorf("%s: got %s %q, want %q", u.src, res.Status, res.Error, u.want)
		}
	}
	// The state stays usable after table errors.
	if res := runSource(t, p, `function handle() return "ok" end`); string(res.Value) != `"ok"` {
		t.Errorf("afterwards: %s %s", res.Value, res.Error)
	}
}

// TestPatternBudget proves that pathological patterns end as the run's
// instruction-budget abort, quickly, and leave the pool working.
func TestPatternBudget(t *testing.T) {
	p := newTestPool(t, 1)
	limits := Limits{Timeout: 30 * time.Second, Instructions: 2_000_000}
	const boundedBy = 10 * time.Second // loose: the race detector is slow
	tests := []struct{ name, src string }{
		{"exponential backtracking", `return string.find(string.rep("a", 30), string.rep("a*", 30) .. "b")`},
		{"lazy quantifiers", `return ("a"):rep(1e6):find(".-.-.-.-b")`},
		{"greedy quantifiers", `return ("a"):rep(1e5):find(".*.*.*b")`},
		{"match", `return string.match(("a"):rep(5000), "(a-)(a-)(a-)b")`},
		{"gsub", `return string.gsub(("a"):rep(1e5), "a-a-a-b", "")`},
		{"gmatch", `for x in ("a"):rep(1e5):gmatch("a*a*a*b") do end`},
		{"balance", `return ("("):rep(1e5):find("%b()")`},
		{"back-reference", `return ("a"):rep(1e5):find("(a*)%1%1b")`},
		{"long set", `return ("b"):rep(1e5):find("b?[" .. ("a"):rep(5000) .. "]")`},
		{"frontier", `return ("ab "):rep(3e4):find("%f[%a].-.-%f[%s]x")`},
		{"under pcall", `for i = 1, 10 do pcall(string.find, string.rep("a", 30), string.rep("a*", 30) .. "b") end return "caught"`},
	}
	hello := exampleFunction(t, "hello")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			res := p.Run(context.Background(), Function{Name: "t", Source: "function handle() " + tt.src + " end"}, Request{}, limits)
			if elapsed := time.Since(start); elapsed > boundedBy {
				t.Errorf("took %v", elapsed)
			}
			if res.Status != TimedOut || !strings.Contains(res.Error, "instruction budget exhausted") {
				t.Fatalf("got %s %q %s, want the instruction budget", res.Status, res.Error, res.Value)
			}
			if res := p.Run(context.Background(), hello, Request{}, Limits{}); res.Status != Succeeded {
				t.Fatalf("pool broken afterwards: %s %s", res.Status, res.Error)
			}
		})
	}

	t.Run("wall clock", func(t *testing.T) {
		res := p.Run(context.Background(), Function{Name: "t", Source: `function handle() return ("a"):rep(1e6):find(".-.-.-.-b") end`},
			Request{}, Limits{Timeout: 100 * time.Millisecond, Instructions: 1 << 50})
		if res.Status != TimedOut || !strings.Contains(res.Error, "timed out after 100ms") {
			t.Fatalf("got %s %q", res.Status, res.Error)
		}
	})

	// Ordinary linear work on a large subject stays well inside the default
	// budget.
	t.Run("linear work passes", func(t *testing.T) {
		src := `function handle()
  local s = ("hello {{name}}, "):rep(50000)
  local out, n = s:gsub("{{(%w+)}}", {name = "Ada"})
  local words = 0
  for w in out:gmatch("%a+") do words = words + 1 end
  return {n = n, words = words, len = #out, found = (out:find("Ada,%s*$"))}
end`
		res := p.Run(context.Background(), Function{Name: "t", Source: src}, Request{}, Limits{})
		if res.Status != Succeeded || string(res.Value) != `{"found":549996,"len":550000,"n":50000,"words":100000}` {
			t.Fatalf("got %s %s %s", res.Status, res.Value, res.Error)
		}
	})

	t.Run("result size bounded", func(t *testing.T) {
		res := runSource(t, p, `function handle() return select(2, pcall(string.gsub, ("x"):rep(1e6), "x", ("y"):rep(100))) end`)
		if !strings.Contains(string(res.Value), "resulting string too large") {
			t.Fatalf("got %s %s %s", res.Status, res.Value, res.Error)
		}
	})
}

// patternCases check find, match, gmatch and gsub against the Lua 5.2
// reference manual (§6.4.1 and the descriptions of the four functions);
// where the manual leaves a detail open, against lstrlib.c of 5.2, as noted.
var patternCases = []luaCase{
	// Character classes, one by one (C locale).
	{expr: `string.find("hello world", "%a+")`, want: `1,5`},
	{expr: `#string.match(" \t\n\v\f\rx", "^%s*")`, want: `6`},
	{expr: `string.match("abc123def", "%d+")`, want: `"123"`},
	{expr: `string.byte(string.match("ab\1\2\127cd", "%c+"), 1, -1)`, want: `1,2,127`},
	{expr: `string.match("aBcDe", "%l+")`, want: `"a"`},
	{expr: `string.match("aBCDe", "%u+")`, want: `"BCD"`},
	{expr: `string.match("hello, world!", "%p")`, want: `","`},
	{expr: `string.match("foo_bar42 baz", "%w+")`, want: `"foo"`},
	{expr: `string.match("zzCAFEbabe!", "%x+")`, want: `"CAFEbabe"`},
	{expr: `string.match("  x~y z", "%g+")`, want: `"x~y"`},
	{expr: `string.match("abc123", "%D+")`, want: `"abc"`},
	{expr: `string.match("   abc  ", "%S+")`, want: `"abc"`},
	{expr: `string.match("123abc", "%A+")`, want: `"123"`},
	{expr: `string.match("abc,def", "%W")`, want: `","`},
	{expr: `string.match("HELLOworld", "%L+")`, want: `"HELLO"`},
	{expr: `string.match("helloWORLD", "%U+")`, want: `"hello"`},
	{expr: `string.match("a1!b", "%P+")`, want: `"a1"`},
	{expr: `string.match("xyzAF", "%X+")`, want: `"xyz"`},
	{expr: `string.match("ab\0cd", "%C+")`, want: `"ab"`},
	{expr: `string.match("a b", "%G")`, want: `" "`},
	{expr: `string.find("a\0b", "%z")`, want: `2,2`}, // deprecated in 5.2, still accepted
	{expr: `string.match("abc", ".")`, want: `"a"`},
	{expr: `#string.match("\0\255x", "..")`, want: `2`},
	// Bytes above 127 are in no class of the C locale.
	{expr: `string.match("\195\169", "%a")`, want: `nil`},
	{expr: `#string.match("x\195\169y", "[\128-\255]+")`, want: `2`},
	// %x for a non-alphanumeric x is the character itself.
	{expr: `string.find("a.b", "%.")`, want: `2,2`},
	{expr: `string.match("50%", "%d+%%")`, want: `"50%"`},
	{expr: `string.match("(x)", "%((%a)%)")`, want: `"x"`},

	// Sets.
	{expr: `string.match("hello123", "[a-z]+")`, want: `"hello"`},
	{expr: `string.match("0x1F!", "[%dA-F]+", 3)`, want: `"1F"`},
	{expr: `string.match("x-y", "[%-]")`, want: `"-"`},
	{expr: `string.match("a-z", "[a-]+")`, want: `"a-"`}, // '-' last is literal
	{expr: `string.match("abc]", "[]]")`, want: `"]"`},   // ']' first is literal
	{expr: `string.match("b]a", "[^]a]")`, want: `"b"`},
	{expr: `string.match("abc^", "[%^]")`, want: `"^"`},
	{expr: `string.match("abc^", "[b^]+")`, want: `"b"`},
	{expr: `string.match("abc", "[^a]+")`, want: `"bc"`},
	{expr: `string.match("abc", "[^%a]")`, want: `nil`},
	{expr: `string.match("[test]", "[[]")`, want: `"["`},
	{expr: `string.match("tab\there", "[%s]")`, want: `"` + "\t" + `"`},
	{expr: `string.match("a1_B2", "[%w_]+")`, want: `"a1_B2"`},

	// Quantifiers.
	{expr: `string.match("aaab", "a*")`, want: `"aaa"`},
	{expr: `string.match("baaa", "a*")`, want: `""`},
	{expr: `string.match("aaab", "a+b")`, want: `"aaab"`},
	{expr: `string.match("b", "a+b")`, want: `nil`},
	{expr: `string.match("b", "a?b")`, want: `"b"`},
	{expr: `string.match("aab", "a?ab")`, want: `"aab"`},
	{expr: `string.match("ab", "a?ab")`, want: `"ab"`}, // '?' backtracks
	{expr: `string.match("<a><b>", "<.*>")`, want: `"<a><b>"`},
	{expr: `string.match("<a><b>", "<.->")`, want: `"<a>"`}, // '-' is lazy
	{expr: `string.match("aaa", "a-")`, want: `""`},
	{expr: `string.match("aaa", "a-$")`, want: `"aaa"`},
	{expr: `string.find("aaa", "a-b")`, want: `nil`},
	{expr: `string.match("key=val;k2=v2", "(.-)=(.-);")`, want: `"key","val"`},
	{expr: `string.match("[[x]]", "%[+")`, want: `"[["`},
	{expr: `string.match("int x = 10;", "%a+%s*=%s*%d+")`, want: `"x = 10"`},

	// Anchors.
	{expr: `string.find("hello", "^h")`, want: `1,1`},
	{expr: `string.find("hello", "^e")`, want: `nil`},
	{expr: `string.find("hello", "o$")`, want: `5,5`},
	{expr: `string.find("hello", "l$")`, want: `nil`},
	{expr: `string.find("a$b", "a$b")`, want: `1,3`},     // '$' not at the end is literal
	{expr: `string.find("a^b", "a^b")`, want: `1,3`},     // '^' not at the start is literal
	{expr: `string.find("abab", "^ab", 3)`, want: `3,4`}, // the anchor is at init
	{expr: `string.find("", "^$")`, want: `1,0`},
	{expr: `string.find("abc", "$")`, want: `4,3`},
	{expr: `string.match("hello", "^(h)(e)")`, want: `"h","e"`},

	// Captures and position captures.
	{expr: `string.match("hello world", "(%w+) (%w+)")`, want: `"hello","world"`},
	{expr: `string.match("abc", "((a)(b))")`, want: `"ab","a","b"`},
	{expr: `string.match("hello", "()ll()")`, want: `3,5`},
	{expr: `string.find("hello", "l(l)()")`, want: `3,4,"l",5`},
	{expr: `string.match("abc", "()")`, want: `1`},
	{expr: `string.match("abc", "a()")`, want: `2`},
	{expr: `string.match("abc", "(x*)")`, want: `""`},
	{expr: `string.find("key=val", "(%w+)=(%w+)")`, want: `1,7,"key","val"`},
	{expr: `string.match(" x = 1 ", "(%w+)%s*=%s*(%w+)")`, want: `"x","1"`},
	{expr: `string.match("date: 2024-05-17", "(%d+)-(%d+)-(%d+)")`, want: `"2024","05","17"`},

	// Back-references.
	{expr: `string.match("say 'hi' ok", "([\"'])(.-)%1")`, want: `"'","hi"`},
	{expr: `string.find("abcabc", "(abc)%1")`, want: `1,6,"abc"`},
	{expr: `string.match("ab bb cd", "(%a)%1")`, want: `"b"`},
	{expr: `string.match("aa", "()a%1")`, want: `nil`}, // a position capture never matches as text
	{expr: `string.match("[==[x]==]", "%[(=*)%[(.-)%]%1%]")`, want: `"==","x"`},

	// %b and %f.
	{expr: `string.match("f(a(b)c) d", "%b()")`, want: `"(a(b)c)"`},
	{expr: `string.match("[[x]", "%b[]")`, want: `"[x]"`},
	{expr: `string.find("((x)", "%b()")`, want: `2,4`},
	{expr: `string.find("(x", "%b()")`, want: `nil`},
	{expr: `string.gsub("f(1) g(2, (3))", "%b()", "")`, want: `"f g",2`},
	{expr: `string.gsub("THE (quick) fox", "%f[%a]%a+", "W")`, want: `"W (W) W",3`},
	{expr: `string.match("THE (quick) fox", "%f[%l]%a+")`, want: `"quick"`},
	{expr: `string.find("hello", "%f[%a]")`, want: `1,0`},
	{expr: `string.find("abc", "%f[%z]")`, want: `4,3`}, // '\0' stands for the end of the subject
	{expr: `string.find("aXb", "%f[%u]")`, want: `2,1`},
	{expr: `string.gsub("hello world from lua", "%f[%w]%w+%f[%W]", string.upper)`, want: `"HELLO WORLD FROM LUA",4`},

	// gsub with a string replacement.
	{expr: `string.gsub("hello world", "o", "0")`, want: `"hell0 w0rld",2`},
	{expr: `string.gsub("hello world", "(%w+)", "<%1>")`, want: `"<hello> <world>",2`},
	{expr: `string.gsub("hello world", "(%w+) (%w+)", "%2 %1")`, want: `"world hello",1`},
	{expr: `string.gsub("abc", "%w", "%0%0")`, want: `"aabbcc",3`},
	{expr: `string.gsub("abc", "b", "%%")`, want: `"a%c",1`},
	{expr: `string.gsub("abc", "b", "%1")`, want: `"abc",1`}, // %1 without captures is the whole match
	{expr: `string.gsub("abc", "()b", "%1")`, want: `"a2c",1`},
	{expr: `string.gsub("hello", "", "-")`, want: `"-h-e-l-l-o-",6`},
	{expr: `string.gsub("abc", "x*", "-")`, want: `"-a-b-c-",4`},
	{expr: `string.gsub("abc", ".-", "x")`, want: `"xaxbxcx",4`},
	{expr: `string.gsub("aaa", "^a", "b")`, want: `"baa",1`},
	{expr: `string.gsub("abc", "^", ">")`, want: `">abc",1`},
	{expr: `string.gsub("hello hello", "^hello", "bye")`, want: `"bye hello",1`},
	{expr: `string.gsub("abc", "b", 5)`, want: `"a5c",1`},
	{expr: `string.gsub("aaaa", "a", "b", 2)`, want: `"bbaa",2`},
	{expr: `string.gsub("aaaa", "a", "b", 0)`, want: `"aaaa",0`},
	{expr: `string.gsub("aaaa", "a", "b", -1)`, want: `"bbbb",4`}, // 5.2 reads n as a size_t
	{expr: `string.gsub("hello world", "o", "0", 1)`, want: `"hell0 world",1`},
	{expr: `string.gsub("", "", "x")`, want: `"x",1`},
	// gsub with a table.
	{expr: `string.gsub("$name is $age", "%$(%w+)", {name = "Ann", age = 7})`, want: `"Ann is 7",2`},
	{expr: `string.gsub("$x $y", "%$(%w+)", {x = "1"})`, want: `"1 $y",2`}, // nil keeps the match
	{expr: `string.gsub("$x $y", "%$(%w+)", {x = false, y = "2"})`, want: `"$x 2",2`},
	{expr: `string.gsub("a b", "%a", {a = "A"})`, want: `"A b",2`}, // key: the whole match
	{expr: `string.gsub("a", "a", setmetatable({}, {__index = function(_, k) return k .. k end}))`, want: `"aa",1`},
	// gsub with a function.
	{expr: `string.gsub("abc", "%w", function(c) return c:upper() .. "." end)`, want: `"A.B.C.",3`},
	{expr: `string.gsub("abc", "%w", function(c) if c == "b" then return nil end return "x" end)`, want: `"xbx",3`},
	{expr: `string.gsub("k=v, a=b", "(%w+)=(%w+)", function(k, v) return v .. "=" .. k end)`, want: `"v=k, b=a",2`},
	{expr: `string.gsub("abc", "()b()", function(a, b) return a + b end)`, want: `"a5c",1`},
	{expr: `string.gsub("x", "x", function() return 1.5 end)`, want: `"1.5",1`},

	// gmatch.
	{expr: `collect(string.gmatch("one two three", "%a+"))`, want: `"one|two|three"`},
	{expr: `collect(string.gmatch("a=1, b=2", "(%w+)=(%w+)"))`, want: `"a:1|b:2"`},
	{expr: `collect(string.gmatch("abc", "()"))`, want: `"1|2|3|4"`},
	{expr: `collect(string.gmatch("abc", "x*"))`, want: `"|||"`},
	// 5.2 restarts right after a non-empty match, so an empty match
	// follows at the end (5.3.? and 5.4 skip it).
	{expr: `collect(string.gmatch("aaa", "a*"))`, want: `"aaa|"`},
	{expr: `collect(string.gmatch("a^b", "^b"))`, want: `"^b"`}, // no anchor in gmatch
	{expr: `collect(("k1=v1;k2=v2"):gmatch("(%w+)=(%w+)"))`, want: `"k1:v1|k2:v2"`},

	// find: init, negative init, plain.
	{expr: `string.find("abcabc", "b", 3)`, want: `5,5`},
	{expr: `string.find("abcabc", "b+", 3)`, want: `5,5`},
	{expr: `string.find("abcabc", "b", -2)`, want: `5,5`},
	{expr: `string.find("abcabc", "[ab]+", -3)`, want: `4,5`},
	{expr: `string.find("abcabc", "a", -100)`, want: `1,1`},
	{expr: `string.find("abcabc", "a", 0)`, want: `1,1`},
	{expr: `string.find("abc", "", 10)`, want: `nil`},
	{expr: `string.find("abc", "", 4)`, want: `4,3`},
	{expr: `string.find("abc", "%a", 4)`, want: `nil`},
	{expr: `string.find("a.b", ".", 1, true)`, want: `2,2`},
	{expr: `string.find("x(y", "(", 1, true)`, want: `2,2`},
	{expr: `string.find("a+b", "a+", 1, true)`, want: `1,2`},
	{expr: `string.find("a.b", ".")`, want: `1,1`}, // go-lua used to search "." literally
	{expr: `string.find("abc", "b", 1, false)`, want: `2,2`},
	{expr: `string.match("abc123", "%d", 5)`, want: `"2"`},
	{expr: `string.match("abc123", "%d+", -2)`, want: `"23"`},
	{expr: `("x = 1"):match("^(%w+)")`, want: `"x"`},
	{expr: `string.find(123456, 45)`, want: `4,5`},

	// No false "too complex": long plain runs iterate, not recurse.
	{expr: `string.find(string.rep("a", 1000), string.rep("a", 1000) .. "$")`, want: `1,1000`},

	// Errors, with the messages of Lua 5.2.
	{expr: `string.find("a", "a%")`, err: "malformed pattern (ends with '%')"},
	{expr: `string.find("a", "[a")`, err: "malformed pattern (missing ']')"},
	{expr: `string.find("a", "[a%")`, err: "malformed pattern (missing ']')"},
	{expr: `string.match("x", "%b")`, err: "malformed pattern (missing arguments to '%b')"},
	{expr: `string.match("x", "%bx")`, err: "malformed pattern (missing arguments to '%b')"},
	{expr: `string.match("x", "%fx")`, err: "missing '[' after '%f' in pattern"},
	{expr: `string.match("abc", "(a")`, err: "unfinished capture"},
	{expr: `string.find("abc", "(a")`, err: "unfinished capture"},
	{expr: `string.match("abc", "a)")`, err: "invalid pattern capture"},
	{expr: `string.match("xyz", "(x)%2")`, err: "invalid capture index %2"},
	{expr: `string.match("xx", "(x%1)")`, err: "invalid capture index %1"},
	{expr: `string.match("x", "%0")`, err: "invalid capture index"},
	{expr: `string.gsub("abc", "b", "%2")`, err: "invalid capture index"},
	{expr: `string.gsub("abc", "b", "%x")`, err: "invalid use of '%' in replacement string"},
	{expr: `string.gsub("abc", "b", "x%")`, err: "invalid use of '%' in replacement string"},
	{expr: `string.gsub("abc", "b", function() return {} end)`, err: "invalid replacement value (a table)"},
	{expr: `string.gsub("abc", "b", true)`, err: "bad argument #3"},
	{expr: `string.match(string.rep("a", 40), string.rep("(a)", 33))`, err: "too many captures"},
	{expr: `string.find(string.rep("a", 300), string.rep("a?", 300))`, err: "pattern too complex"},
	{expr: `string.find(nil, "x")`, err: "bad argument #1"},
	{expr: `string.gmatch("x", "%")()`, err: "malformed pattern (ends with '%')"},
}

var stringCases = []luaCase{
	// reverse works on bytes: UTF-8 comes out reversed byte by byte.
	{expr: `string.reverse("abc")`, want: `"cba"`},
	{expr: `string.reverse("")`, want: `""`},
	{expr: `string.byte(string.reverse("h\195\169"), 1, -1)`, want: `169,195,104`},
	{expr: `("a\0b"):reverse() == "b\0a"`, want: `true`},
	// lower/upper map ASCII only and leave other bytes alone.
	{expr: `string.byte(("\195\128bC\255"):lower(), 1, -1)`, want: `195,128,98,99,255`},
	{expr: `string.byte(("\195\169bC\255"):upper(), 1, -1)`, want: `195,169,66,67,255`},
	{expr: `("MiXeD 123"):lower() .. ("MiXeD 123"):upper()`, want: `"mixed 123MIXED 123"`},

	// format.
	{expr: `string.format("%5.2f|%-5d|%05d|%+d|% d", 3.14159, 42, 42, 7, 7)`, want: `" 3.14|42   |00042|+7| 7"`},
	{expr: `string.format("%d %i", 3.7, -3.7)`, want: `"3 -3"`}, // 5.2 truncates
	{expr: `string.format("%.3d|%5.3d|%-+5d", 7, 7, 7)`, want: `"007|  007|+7   "`},
	{expr: `string.format("%g|%g|%g|%g|%g", 1/3, 1e20, 100000, 1000000, 0.00001)`, want: `"0.333333|1e+20|100000|1e+06|1e-05"`},
	{expr: `string.format("%.3g|%.0g|%#g|%G", 0.0001234, 123, 1, 1e-10)`, want: `"0.000123|1e+02|1.00000|1E-10"`},
	{expr: `string.format("%e|%.2E|%.0e", 12345.678, 0.000123, 5)`, want: `"1.234568e+04|1.23E-04|5e+00"`},
	{expr: `string.format("%f|%.1f|%10.3f|%-10.1f|", 1.5, 0.05, -3.14159, 2.25)`, want: `"1.500000|0.1|    -3.142|2.2       |"`},
	{expr: `string.format("%x|%X|%o|%#x|%#X|%#o|%#x|%u", 255, 255, 8, 255, 255, 8, 0, 42)`, want: `"ff|FF|10|0xff|0XFF|010|0|42"`},
	{expr: `string.format("%+x|% x|%08x", 255, 255, 48879)`, want: `"ff|ff|0000beef"`},
	{expr: `string.format("%c%c%c|%3c|%-3c|", 76, 117, 97, 65, 66)`, want: `"Lua|  A|B  |"`},
	{expr: `string.format("%a|%a|%.3a|%A|%a|%a", 1, 0.5, 1, 255.5, 0, -2)`, want: `"0x1p+0|0x1p-1|0x1.000p+0|0X1.FFP+7|0x0p+0|-0x1p+1"`},
	{expr: `string.format("%10a|%-10a|%010a|%#a", 1, 1, 1, 1)`, want: `"    0x1p+0|0x1p+0    |0x00001p+0|0x1.p+0"`},
	{expr: `string.format("%5s|%-5s|%.2s|%5.1s|", "ab", "ab", "abc", "xyz")`, want: `"   ab|ab   |ab|    x|"`},
	{expr: `#string.format("%5s", "\195\169")`, want: `5`},  // widths count bytes
	{expr: `#string.format("%.1s", "\195\169")`, want: `1`}, // and so do precisions
	{expr: `#string.format("%5s", string.rep("x", 200))`, want: `200`},
	{expr: `#string.format("%.99s", string.rep("x", 200))`, want: `99`},
	{expr: `string.format("%s %s %s %s", nil, true, 12, 1.5)`, want: `"nil true 12 1.5"`},
	{expr: `string.format("%s", setmetatable({}, {__tostring = function() return "obj" end}))`, want: `"obj"`},
	{expr: `string.format("%s|%d", "a\0b", 1) == "a\0b|1"`, want: `true`, differs: "C's sprintf stops at the NUL"},
	{expr: `string.format("%q", 'a "b"\n\\')`, want: `""a \"b\"\` + "\n" + `\\""`},
	{expr: `string.format("%q", "\0" .. "1\0a\r\127")`, want: `""\0001\0a\13\127""`},
	{expr: `string.byte(string.format("%q", "\200\n"), 1, -1)`, want: `34,200,92,10,34`}, // high bytes stay raw
	{expr: `string.format("%q", 1/0)`, want: `""inf""`},
	{expr: `string.format("%5.1f|%-5f|%+f|% f|%05f|%F", 1/0, 1/0, 1/0, 1/0, 1/0, 1)`, err: "invalid option '%F' to 'format'"},
	{expr: `string.format("%5.1f|%-5f|%+f|% f|%05f", 1/0, 1/0, 1/0, 1/0, 1/0)`, want: `"  inf|inf  |+inf| inf|  inf"`},
	{expr: `string.format("%f|%e|%g|%G|%E|%a", -1/0, 1/0, 1/0, 1/0, -1/0, 1/0)`, want: `"-inf|inf|inf|INF|-INF|inf"`},
	{expr: `string.format("%f|%f|%G", 0/0, -(0/0), -(0/0))`, want: `"-nan|nan|NAN"`},
	{expr: `string.format("%%|%5%%d", 1)`, err: "invalid option '%%' to 'format'"},
	{expr: `string.format("100%% %d%%", 5)`, want: `"100% 5%"`},
	{expr: `#string.format("%99.99f", 1)`, want: `101`},
	{expr: `string.format("%")`, err: "bad argument #2"},
	{expr: `string.format("%", 1)`, err: "invalid option '%' to 'format'", differs: "C Lua puts the string's NUL terminator in the message"},
	{expr: `string.format("%-", 1)`, err: "invalid option '%' to 'format'", differs: "C Lua puts the string's NUL terminator in the message"},
	{expr: `string.format("%y", 1)`, err: "invalid option '%y' to 'format'"},
	{expr: `string.format("%123d", 1)`, err: "invalid format (width or precision too long)"},
	{expr: `string.format("%.123f", 1)`, err: "invalid format (width or precision too long)"},
	{expr: `string.format("%------d", 1)`, err: "invalid format (repeated flags)"},
	{expr: `string.format("%d")`, err: "(no value)"},
	{expr: `string.format("%d", "x")`, err: "number expected, got string"},
	{expr: `string.format("%d", 2^63)`, err: "not a number in proper range"},
	{expr: `string.format("%d", 0/0)`, err: "not a number in proper range"},
	{expr: `string.format("%x", -1)`, err: "not a non-negative number in proper range"},
	{expr: `string.format("%s", setmetatable({}, {__tostring = function() return {} end}))`, err: "'__tostring' must return a string", differs: `C Lua 5.2 hands NULL to sprintf ("(null)")`},
	{expr: `string.format("%s%s%s%s%s", string.rep("x", 4e6), string.rep("x", 4e6), string.rep("x", 4e6), string.rep("x", 4e6), string.rep("x", 4e6))`, err: "resulting string too large", differs: "the 16 MiB limit is the sandbox's"},

	// tostring and number formatting (%.14g, C's inf and nan).
	{expr: `tostring(1/0), tostring(-1/0), tostring(math.huge), tostring(-math.huge)`, want: `"inf","-inf","inf","-inf"`},
	// x86 makes 0/0 a NaN with the sign bit set: Lua 5.2 on Linux
	// prints it as "-nan", and its negation as "nan".
	{expr: `tostring(0/0), tostring(-(0/0))`, want: `"-nan","nan"`},
	{expr: `tostring(0.1), tostring(1/3), tostring(100), tostring(-0.0), tostring(123.456)`, want: `"0.1","0.33333333333333","100","-0","123.456"`},
	{expr: `tostring(1e15), tostring(2^53), tostring(1e100), tostring(-1.5e-7), tostring(99999999999999)`, want: `"1e+15","9.007199254741e+15","1e+100","-1.5e-07","99999999999999"`},
	{expr: `tostring(nil), tostring(true), tostring("s")`, want: `"nil","true","s"`},
	{expr: `tostring(setmetatable({}, {__tostring = function() return "T" end}))`, want: `"T"`},
	{expr: `tostring({}):match("^table: ") ~= nil`, want: `true`},
	{expr: `table.concat({1/0, -1/0, 1.5}, " ")`, want: `"inf -inf 1.5"`},
	{expr: `string.rep("ab", 2, 1/0)`, want: `"abinfab"`},
	{expr: `select(2, pcall(error, 1/0, 0))`, want: `inf`}, // level 0: still a number
	{expr: `select(2, pcall(error, 1/0))`, want: `"inf"`},  // a position makes it a string
	{expr: `tostring()`, err: "bad argument #1"},
}

var errorValueCases = []luaCase{
	{expr: `(function() local ok, e = pcall(error, {code = 42}) return ok, e.code end)()`, want: `false,42`},
	{expr: `pcall(error)`, want: `false,nil`},
	{expr: `select("#", pcall(error))`, want: `2`},
	{expr: `pcall(error, nil)`, want: `false,nil`},
	{expr: `pcall(error, false)`, want: `false,false`},
	{expr: `(function() local t = {} local ok, e = pcall(error, t) return e == t end)()`, want: `true`},
	{expr: `(function() local t = {} local ok, e = pcall(function() error(t, 2) end) return e == t end)()`, want: `true`},
	{expr: `(function()
		local ok, e = pcall(function()
			local ok2, inner = pcall(error, {n = 1})
			inner.n = inner.n + 1
			error(inner)
		end)
		return e.n
	end)()`, want: `2`},
	{expr: `xpcall(function() error({msg = "x"}) end, function(e) return e.msg end)`, want: `false,"x"`},
	{expr: `(function() local ok, e = pcall(string.gsub, "a", "a", function() error({k = 7}) end) return e.k end)()`, want: `7`},
	{expr: `(function() local ok, e = pcall(table.sort, {3, 2, 1}, function() error({s = "cmp"}) end) return e.s end)()`, want: `"cmp"`},
	{expr: `(function() local ok, e = pcall(error, setmetatable({}, {__tostring = function() return "custom" end})) return tostring(e) end)()`, want: `"custom"`},
	{expr: `pcall(error, "m", 0)`, want: `false,"m"`},
	{expr: `(select(2, pcall(function() error("m") end))):match("^t:%d+: m$") ~= nil`, want: `true`},
	{expr: `(select(2, pcall(function() error(42) end))):match("^t:%d+: 42$") ~= nil`, want: `true`},
	{expr: `select(2, pcall(function() local x = nil; return x.y end)):match("attempt to index") ~= nil`, want: `true`},
}
