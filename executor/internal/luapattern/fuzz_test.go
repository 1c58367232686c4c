package luapattern

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// FuzzPattern runs random patterns over random subjects, as string.find,
// string.gmatch and string.gsub would. Nothing may panic except through
// Step, every result must lie inside the subject, and the work done must be
// reported as steps: with a budget of 200,000 steps no call may take long
// (a loop that forgot to count would show up as a slow input).
func FuzzPattern(f *testing.F) {
	seeds := []struct {
		subject, pattern string
		init             int
	}{
		{"hello world", "%a+", 0},
		{"key=val; k2=v2", "(%w+)=(%w+)", 0},
		{"f(a(b)c)", "%b()", 0},
		{"THE (quick) fox", "%f[%a]%a+", 0},
		{"say 'hi'", "([\"'])(.-)%1", 0},
		{"aaab", "^a-b$", 0},
		{"x", "[%a-z%]]*()", 0},
		{"abc", "((a)(b))", 1},
		{strings.Repeat("a", 40), strings.Repeat("a*", 20) + "b", 0},
		{"[[x]]", "[^]]+", 0},
		{"a.b", "%.", 0},
		{"", "", 0},
		{"x", "%", 0},
		{"x", "[", 0},
		{"x", "(()", 0},
		{"\x00\xff\x80", "[\x00-\x7f]%z%c", 0},
	}
	for _, s := range seeds {
		f.Add(s.subject, s.pattern, s.init)
	}
	f.Fuzz(func(t *testing.T, subject, pattern string, init int) {
		if len(subject) > 4096 || len(pattern) > 512 {
			return
		}
		init %= len(subject) + 1
		if init < 0 {
			init += len(subject) + 1
		}
		// A hang would stall the fuzzer without a report: crash instead,
		// which records the input.
		watchdog := time.AfterFunc(10*time.Second, func() {
			panic(fmt.Sprintf("hang: %q in %q from %d", pattern, subject, init))
		})
		defer watchdog.Stop()

		const budget = 200_000
		steps := 0
		m := &Matcher{Step: func(n int) {
			steps += n
			if steps > budget {
				panic(errBudget)
			}
		}}
		start := time.Now()
		defer func() {
			if v := recover(); v != nil && v != errBudget {
				t.Fatalf("panic %v for %q in %q", v, pattern, subject)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("%v for %d steps: work not counted (%q in %q)", d, steps, pattern, subject)
			}
		}()

		// string.find / string.match.
		s, e, err := m.Find(subject, pattern, init)
		if err != nil {
			if _, ok := err.(Error); !ok {
				t.Fatalf("error of type %T", err)
			}
		} else if s >= 0 {
			if s < init || e < s || e > len(subject) {
				t.Fatalf("match [%d,%d) from %d in %d bytes", s, e, init, len(subject))
			}
			if strings.HasPrefix(pattern, "^") && s != init {
				t.Fatalf("anchored match at %d, init %d", s, init)
			}
			checkCaptures(t, m, subject, s, e)
		}
		if !HasSpecials(pattern) && err == nil {
			want := strings.Index(subject[init:], pattern)
			if want >= 0 {
				want += init
			}
			if s != want {
				t.Fatalf("plain pattern %q: Find %d, strings.Index %d", pattern, s, want)
			}
		}

		// string.gmatch / string.gsub: Scan, which skips positions that
		// cannot start a match, must agree with trying every position as
		// Lua does.
		for pos := 0; pos <= len(subject); {
			s, e, err := m.Scan(subject, pattern, pos)
			ns, ne, nerr := naiveScan(m, subject, pattern, pos)
			if s != ns || e != ne || (err == nil) != (nerr == nil) || err != nil && err.Error() != nerr.Error() {
				t.Fatalf("Scan(%d) = %d,%d,%v; trying every position: %d,%d,%v", pos, s, e, err, ns, ne, nerr)
			}
			if err != nil || s < 0 {
				return
			}
			if s < pos || e < s || e > len(subject) {
				t.Fatalf("Scan(%d) = %d,%d", pos, s, e)
			}
			m.MatchAt(subject, pattern, s) // restore the captures of this match
			checkCaptures(t, m, subject, s, e)
			if e > s {
				pos = e
			} else {
				pos = s + 1
			}
		}
	})
}

// naiveScan is Lua's loop: MatchAt at every position from init.
func naiveScan(m *Matcher, subject, pattern string, init int) (int, int, error) {
	for pos := init; pos <= len(subject); pos++ {
		e, err := m.MatchAt(subject, pattern, pos)
		if err != nil {
			return -1, -1, err
		}
		if e >= 0 {
			return pos, e, nil
		}
	}
	return -1, -1, nil
}

func checkCaptures(t *testing.T, m *Matcher, subject string, s, e int) {
	t.Helper()
	if n := m.NumCaptures(); n < 0 || n > MaxCaptures {
		t.Fatalf("%d captures", n)
	}
	for i := range max(m.NumCaptures(), 1) {
		c, err := m.Capture(i, s, e)
		if err != nil {
			if err.Error() != "unfinished capture" {
				t.Fatalf("capture %d: %v", i, err)
			}
			continue
		}
		if c.Start < 0 || c.End < c.Start || c.End > len(subject) || c.Position && c.Start != c.End {
			t.Fatalf("capture %d = %+v in %d bytes", i, c, len(subject))
		}
	}
}
