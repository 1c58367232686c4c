package luapattern

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// find runs Find and renders the outcome the way string.find shows it:
// 1-based start and inclusive end, then the captures (position captures as
// numbers, others quoted), or "nil", or the error text.
func find(subject, pattern string, init int) string {
	var m Matcher
	s, e, err := m.Find(subject, pattern, init)
	if err != nil {
		return "error: " + err.Error()
	}
	if s < 0 {
		return "nil"
	}
	out := fmt.Sprintf("%d,%d", s+1, e)
	for i := range m.NumCaptures() {
		c, err := m.Capture(i, s, e)
		if err != nil {
			return "error: " + err.Error()
		}
		if c.Position {
			out += fmt.Sprintf(",%d", c.Start+1)
		} else {
			out += fmt.Sprintf(",%q", subject[c.Start:c.End])
		}
	}
	return out
}

// TestFind covers the matcher directly; the Lua-level conformance suite
// (executor.TestPatterns) covers the string functions built on it.
func TestFind(t *testing.T) {
	tests := []struct {
		subject, pattern string
		init             int
		want             string
	}{
		{"hello world", "o w", 0, "5,7"},
		{"hello world", "%a+", 6, "7,11"},
		{"hello", "", 0, "1,0"},
		{"hello", "", 5, "6,5"},
		{"hello", "^l", 2, "3,3"},
		{"hello", "^h", 1, "nil"},
		{"hello", "(h)(e)", 0, `1,2,"h","e"`},
		{"hello", "()ll()", 0, "3,4,3,5"},
		{"a,b,,c", "([^,]*)", 4, `5,4,""`},
		{"f(a(b)c)", "%b()", 0, "2,8"},
		{"THE (quick) fox", "%f[%a]%a+", 3, "6,10"},
		{"xyzzy", "(z)%1", 0, `3,4,"z"`},
		{"aaa", "a-b", 0, "nil"},
		{"aaab", "a-b", 0, "1,4"},
		{"\x00\xff", "[\x00-\x10]", 0, "1,1"},
		{"\x00\xff", "[\x80-\xff]", 0, "2,2"},
		{"a%", "%%", 0, "2,2"},
		{"abc", "[a-c]+$", 0, "1,3"},
		{"  x", "%s*()", 0, "1,2,3"},
		{"x", "%", 0, "error: malformed pattern (ends with '%')"},
		{"x", "[x", 0, "error: malformed pattern (missing ']')"},
		{"x", "[]", 0, "error: malformed pattern (missing ']')"},
		{"x", "[^]", 0, "error: malformed pattern (missing ']')"},
		{"x", "(x", 0, "error: unfinished capture"},
		{"x", "x)", 0, "error: invalid pattern capture"},
		{"x", "%1", 0, "error: invalid capture index %1"},
		{"x", "%b(", 0, "error: malformed pattern (missing arguments to '%b')"},
		{"x", "%f", 0, "error: missing '[' after '%f' in pattern"},
		{"x", strings.Repeat("(", 33), 0, "error: too many captures"},
		{strings.Repeat("a", 300), strings.Repeat("a?", 300), 0, "error: pattern too complex"},
		// 199 nested '?' fit in the depth limit of 200 (the outer call is
		// the first level).
		{strings.Repeat("a", 199), strings.Repeat("a?", 199), 0, "1,199"},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%.30q in %.30q from %d", tt.pattern, tt.subject, tt.init)
		if got := find(tt.subject, tt.pattern, tt.init); got != tt.want {
			t.Errorf("%s: got %s, want %s", name, got, tt.want)
		}
	}
}

func TestErrorsAreTyped(t *testing.T) {
	var m Matcher
	_, _, err := m.Find("x", "%", 0)
	var pe Error
	if !errors.As(err, &pe) {
		t.Fatalf("%T %v", err, err)
	}
	// An open capture is not an error while matching: "(" matches the
	// empty string; only reading the capture fails (see TestCaptureAccess).
	if e, err := m.MatchAt("x", "(", 0); err != nil || e != 0 {
		t.Errorf("MatchAt = %d %v", e, err)
	}
}

func TestCaptureAccess(t *testing.T) {
	var m Matcher
	e, err := m.MatchAt("abc", "(a)()(b)", 0)
	if err != nil || e != 2 || m.NumCaptures() != 3 {
		t.Fatalf("MatchAt = %d %v, %d captures", e, err, m.NumCaptures())
	}
	want := []Capture{{0, 1, false}, {1, 1, true}, {1, 2, false}}
	for i, w := range want {
		if c, err := m.Capture(i, 0, e); err != nil || c != w {
			t.Errorf("capture %d = %+v %v, want %+v", i, c, err, w)
		}
	}
	if _, err := m.Capture(3, 0, e); err == nil || err.Error() != "invalid capture index" {
		t.Errorf("capture 4: %v", err)
	}
	// Without captures, capture 0 is the whole match.
	e, _ = m.MatchAt("abc", "b.", 1)
	if c, err := m.Capture(0, 1, e); err != nil || c != (Capture{1, 3, false}) {
		t.Errorf("whole match = %+v %v", c, err)
	}
	// An open capture is reported when read, as Lua does.
	e, _ = m.MatchAt("abc", "(ab", 0)
	if _, err := m.Capture(0, 0, e); err == nil || err.Error() != "unfinished capture" {
		t.Errorf("open capture: %v", err)
	}
}

// TestPlainEquivalence: a pattern without special characters matches
// exactly where strings.Index finds it, and every byte escaped with % is
// itself.
func TestPlainEquivalence(t *testing.T) {
	subjects := []string{"", "a", "abcabc", "hello world", "a\x00b\xffc", strings.Repeat("ab", 100) + "x"}
	for _, s := range subjects {
		for i := 0; i <= len(s); i++ {
			for j := i; j <= len(s) && j <= i+4; j++ {
				pat := s[i:j]
				if HasSpecials(pat) {
					continue
				}
				var m Matcher
				start, _, err := m.Find(s, pat, 0)
				if err != nil || start != strings.Index(s, pat) {
					t.Errorf("Find(%q, %q) = %d %v, strings.Index %d", s, pat, start, err, strings.Index(s, pat))
				}
			}
		}
		var esc strings.Builder
		for i := 0; i < len(s); i++ {
			if isAlnum(s[i]) {
				esc.WriteByte(s[i]) // %a would be a class
			} else {
				esc.WriteByte('%')
				esc.WriteByte(s[i])
			}
		}
		var m Matcher
		if e, err := m.MatchAt(s, esc.String()+"$", 0); err != nil || e != len(s) {
			t.Errorf("escaped %q: %d %v", s, e, err)
		}
	}
}

func isAlnum(c byte) bool { return ctype[c]&(cAlpha|cDigit) != 0 }

func TestClasses(t *testing.T) {
	// Each class against the C locale's definition, for all 256 bytes.
	def := map[byte]func(c int) bool{
		'a': func(c int) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' },
		'c': func(c int) bool { return c < 32 || c == 127 },
		'd': func(c int) bool { return c >= '0' && c <= '9' },
		'g': func(c int) bool { return c > 32 && c < 127 },
		'l': func(c int) bool { return c >= 'a' && c <= 'z' },
		'p': func(c int) bool { return strings.ContainsRune("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", rune(c)) },
		's': func(c int) bool { return strings.ContainsRune(" \t\n\v\f\r", rune(c)) },
		'u': func(c int) bool { return c >= 'A' && c <= 'Z' },
		'w': func(c int) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' },
		'x': func(c int) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' },
		'z': func(c int) bool { return c == 0 },
	}
	for cl, f := range def {
		for c := range 256 {
			if got := matchClass(byte(c), cl); got != f(c) {
				t.Errorf("%%%c vs %d: %v", cl, c, got)
			}
			if got := matchClass(byte(c), cl-32); got == f(c) {
				t.Errorf("%%%c vs %d: %v", cl-32, c, got)
			}
		}
	}
}

var errBudget = errors.New("step budget exhausted")

// TestSteps: pathological matches report their work through Step, so the
// caller can stop them; the panic passes through untouched.
func TestSteps(t *testing.T) {
	tests := []struct{ subject, pattern string }{
		{strings.Repeat("a", 30), strings.Repeat("a*", 30) + "b"},
		{strings.Repeat("a", 1e6), ".-.-.-.-b"},
		{strings.Repeat("(", 1e5), "%b()"},
		{strings.Repeat("a", 1e5), "(a*)%1%1b"},
		{strings.Repeat("b", 1e5), "b?[" + strings.Repeat("a", 5000) + "]"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%.20s", tt.pattern), func(t *testing.T) {
			steps := 0
			m := Matcher{Step: func(n int) {
				steps += n
				if steps > 1e6 {
					panic(errBudget)
				}
			}}
			start := time.Now()
			func() {
				defer func() {
					if v := recover(); v != errBudget {
						t.Errorf("recovered %v", v)
					}
				}()
				_, _, err := m.Find(tt.subject, tt.pattern, 0)
				t.Errorf("finished: %v", err)
			}()
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("a million steps took %v", d)
			}
		})
	}

	// Flush reports the remainder.
	total := 0
	m := Matcher{Step: func(n int) { total += n }}
	if _, _, err := m.Find("hello", "l+", 0); err != nil {
		t.Fatal(err)
	}
	m.Flush()
	if total == 0 || total > 100 {
		t.Errorf("steps for a small match: %d", total)
	}
}

func BenchmarkMatcher(b *testing.B) {
	subject := strings.Repeat("lorem ipsum dolor sit amet, ", 36) + "2024-05-17"
	for _, pat := range []string{"(%d+)-(%d+)-(%d+)", "%f[%w]%w+$", "(%a+) (%a+),"} {
		b.Run(pat, func(b *testing.B) {
			steps := 0
			m := Matcher{Step: func(n int) { steps += n }}
			b.ReportAllocs()
			b.SetBytes(int64(len(subject)))
			for b.Loop() {
				if s, _, err := m.Find(subject, pat, 0); s < 0 || err != nil {
					b.Fatal(s, err)
				}
			}
			m.Flush()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(steps), "ns/step")
		})
	}
}
