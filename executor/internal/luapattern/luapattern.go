// Package luapattern implements Lua 5.2 patterns (reference manual §6.4.1)
// over byte strings, for the string library of the executor.
//
// The matcher follows the structure of the reference implementation
// (backtracking over the pattern text, no compilation step), so that its
// results, including the odd corners, are those scripts written for
// standard Lua expect. Classes are those of the C locale (ASCII); every byte
// is a character.
//
// Backtracking makes some patterns exponential or high-degree polynomial
// in the subject's length, and a matcher runs inside a Go function the Lua
// VM's count hook cannot interrupt. So the matcher counts its work in steps
// and reports them to Matcher.Step, which may panic to abort the match; and
// it bounds its recursion (MaxDepth) as Lua does, so a long pattern cannot
// exhaust the Go stack.
package luapattern

import (
	"strconv"
	"strings"
)

const (
	// MaxCaptures is the number of captures a pattern may make
	// (LUA_MAXCAPTURES).
	MaxCaptures = 32
	// MaxDepth bounds the matcher's recursion (Lua's MAXCCALLS): deeper
	// patterns fail with "pattern too complex".
	MaxDepth = 200
	// StepInterval is how many steps accumulate before Step is called.
	StepInterval = 1024
)

// tableThreshold is how many bytes Scan skips one by one before it
// tabulates the bytes that can start a match: 256 class tests, worth it only
// once that many have been wasted.
const tableThreshold = 256

// Special lengths of a capture.
const (
	capUnfinished = -1
	capPosition   = -2
)

// Error is a malformed pattern or a misuse of captures. Its text is the
// message Lua gives, e.g. "malformed pattern (ends with '%')".
type Error string

func (e Error) Error() string { return string(e) }

const (
	errEndsWithPercent = Error("malformed pattern (ends with '%')")
	errMissingBracket  = Error("malformed pattern (missing ']')")
	errBalanceArgs     = Error("malformed pattern (missing arguments to '%b')")
	errFrontier        = Error("missing '[' after '%f' in pattern")
	errTooComplex      = Error("pattern too complex")
	errTooManyCaptures = Error("too many captures")
	errInvalidCapture  = Error("invalid pattern capture")
	errUnfinished      = Error("unfinished capture")
	errNoCapture       = Error("invalid capture index")
)

// errCaptureIndex is a back-reference to a capture that does not exist or
// is still open. (Reading a capture the pattern does not have is
// errNoCapture; Lua 5.2.4 words the two differently.)
func errCaptureIndex(i int) Error {
	return Error("invalid capture index %" + strconv.Itoa(i))
}

// Capture is one capture of a successful match, as byte offsets into the
// subject (End exclusive). A position capture "()" has Start == End and
// Position set; its Lua value is the 1-based position Start+1.
type Capture struct {
	Start, End int
	Position   bool
}

type capture struct{ init, len int }

// Matcher matches patterns; it keeps the captures of the last successful
// match. A Matcher may be reused but not shared between goroutines.
type Matcher struct {
	// Step, if not nil, receives the number of steps done since its last
	// call, every StepInterval steps (and on Flush). A step is one pattern
	// item tried at one subject position, or about 16 bytes compared in
	// bulk. Step may panic to abort a match; the panic passes through.
	Step func(n int)

	src, pat string
	level    int
	depth    int
	pending  int
	capture  [MaxCaptures]capture

	// accept caches, for pattern pat, which bytes its first item accepts.
	accept struct {
		pat   string
		valid bool
		table [256]bool
	}
}

// AddSteps counts n steps of work the caller did on the match's behalf
// (copying a result, say), so they reach Step with the matcher's own.
func (m *Matcher) AddSteps(n int) {
	m.pending += n
	if m.pending >= StepInterval {
		m.flush()
	}
}

// Reset forgets the last match and the subject, and drops steps not yet
// reported (call Flush first to report them). The per-pattern cache stays
// for a short pattern, since a loop calling string.find with the same
// pattern is common.
func (m *Matcher) Reset() {
	m.src, m.pat, m.level, m.pending = "", "", 0, 0
	if len(m.accept.pat) > 256 {
		m.accept.pat, m.accept.valid = "", false
	}
}

// Flush hands the steps not yet reported to Step.
func (m *Matcher) Flush() {
	if m.pending > 0 {
		m.flush()
	}
}

func (m *Matcher) flush() {
	n := m.pending
	m.pending = 0
	if m.Step != nil {
		m.Step(n)
	}
}

func (m *Matcher) tick() {
	m.pending++
	if m.pending >= StepInterval {
		m.flush()
	}
}

// catch turns the matcher's own panics (pattern errors) back into an
// error; anything else (an abort from Step, a bug) keeps unwinding.
func (m *Matcher) catch(err *error) {
	if v := recover(); v != nil {
		e, ok := v.(Error)
		if !ok {
			panic(v)
		}
		*err = e
	}
}

// MatchAt tries pattern at byte offset pos of subject, exactly there, and
// returns the end offset of the match or -1. A leading '^' is not special
// here (as in Lua's gmatch); callers that want an anchor strip it. On
// success the captures are available through Capture.
func (m *Matcher) MatchAt(subject, pattern string, pos int) (end int, err error) {
	end = -1
	defer m.catch(&err)
	m.src, m.pat = subject, pattern
	m.level, m.depth = 0, MaxDepth
	return m.match(pos, 0), nil
}

// Find looks for the first match of pattern in subject starting at byte
// offset init (0 <= init <= len(subject)), as string.find does: a leading
// '^' anchors the match at init. It returns the match's offsets [start,
// end) or -1, -1.
func (m *Matcher) Find(subject, pattern string, init int) (start, end int, err error) {
	if len(pattern) > 0 && pattern[0] == '^' {
		end, err = m.MatchAt(subject, pattern[1:], init)
		if end < 0 {
			return -1, -1, err
		}
		return init, end, nil
	}
	return m.Scan(subject, pattern, init)
}

// Scan returns the first match of pattern at or after byte offset init,
// trying init, init+1, ... up to len(subject) as gmatch and gsub do; '^' is
// not special. It returns the match's offsets [start, end) or -1, -1.
func (m *Matcher) Scan(subject, pattern string, init int) (start, end int, err error) {
	start, end = -1, -1
	defer m.catch(&err)
	m.src, m.pat = subject, pattern
	// A match must begin with a byte the first consuming item accepts; a
	// cheap test of that item skips the positions where the full match
	// could not start, with the same result as trying them all.
	q, ep, ok := m.firstItem(0)
	lead := ok && isLiteral(pattern[q])
	for s1 := init; s1 <= len(subject); s1++ {
		switch {
		case lead:
			i := strings.IndexByte(subject[s1:], pattern[q])
			if i < 0 {
				m.AddSteps((len(subject) - s1) >> 6)
				return -1, -1, nil
			}
			m.AddSteps(i >> 6)
			s1 += i
		case ok:
			s1 = m.skip(s1, q, ep)
			if s1 == len(subject) {
				return -1, -1, nil
			}
		}
		m.level, m.depth = 0, MaxDepth
		if e := m.match(s1, 0); e != -1 {
			return s1, e, nil
		}
	}
	return -1, -1, nil
}

// skip returns the first position from s whose byte the class pat[q:ep]
// accepts, or len(src). After a stretch of misses it tabulates the class
// (kept for later calls with the same pattern, as gsub makes), which turns
// a long skip into a table lookup per byte.
func (m *Matcher) skip(s, q, ep int) int {
	src := m.src
	if !m.accept.valid || m.accept.pat != m.pat {
		for stop := min(len(src), s+tableThreshold); s < stop; s++ {
			m.tick()
			if m.classMatch(src[s], q, ep) {
				return s
			}
		}
		if s == len(src) {
			return s
		}
		for c := range m.accept.table {
			m.accept.table[c] = m.classMatch(byte(c), q, ep)
		}
		m.accept.pat, m.accept.valid = m.pat, true
		m.AddSteps(len(m.accept.table))
	}
	from := s
	for s < len(src) && !m.accept.table[src[s]] {
		s++
	}
	m.AddSteps((s - from) >> 4)
	return s
}

// firstItem finds the pattern's first item that consumes a byte, past
// opening parentheses and position captures, and reports whether every
// match must start with a byte matching it: true for a single-character
// class without a quantifier or with '+'. Parsing it here raises the same
// errors the first match attempt would, in the same order.
func (m *Matcher) firstItem(p int) (q, ep int, ok bool) {
	pat := m.pat
	captures := 0
	for p < len(pat) && pat[p] == '(' {
		captures++
		p++
		if p < len(pat) && pat[p] == ')' {
			p++
		}
	}
	if p >= len(pat) || captures > MaxCaptures { // let match report too many captures

		return 0, 0, false
	}
	switch c := pat[p]; c {
	case ')', '$':
		return 0, 0, false
	case '%':
		if p+1 < len(pat) && (pat[p+1] == 'b' || pat[p+1] == 'f' || isDigitByte(pat[p+1])) {
			return 0, 0, false
		}
	}
	ep = m.classEnd(p)
	if ep < len(pat) && isOptional(pat[ep]) {
		return 0, 0, false
	}
	return p, ep, true
}

func isDigitByte(c byte) bool { return '0' <= c && c <= '9' }

// NumCaptures is the number of captures the last successful match made.
func (m *Matcher) NumCaptures() int { return m.level }

// Capture returns capture i (from 0) of the last successful match, which
// spanned [s, e) of the subject. With no captures in the pattern, capture 0
// is the whole match, as in Lua.
func (m *Matcher) Capture(i, s, e int) (Capture, error) {
	if i >= m.level {
		if i == 0 {
			return Capture{Start: s, End: e}, nil
		}
		return Capture{}, errNoCapture
	}
	c := m.capture[i]
	switch c.len {
	case capUnfinished:
		return Capture{}, errUnfinished
	case capPosition:
		return Capture{Start: c.init, End: c.init, Position: true}, nil
	}
	return Capture{Start: c.init, End: c.init + c.len}, nil
}

// match is Lua's do_match: it returns the end of the match of pat[p:] at
// src[s:], or -1. Tail calls of the C version are loop iterations here.
func (m *Matcher) match(s, p int) int {
	if m.depth--; m.depth < 0 {
		panic(errTooComplex)
	}
	src, pat := m.src, m.pat
loop:
	for p < len(pat) {
		m.tick()
		switch pat[p] {
		case '(':
			if p+1 < len(pat) && pat[p+1] == ')' {
				s = m.startCapture(s, p+2, capPosition)
			} else {
				s = m.startCapture(s, p+1, capUnfinished)
			}
			break loop
		case ')':
			s = m.endCapture(s, p+1)
			break loop
		case '$':
			if p+1 == len(pat) {
				if s != len(src) {
					s = -1
				}
				break loop
			}
		case '%':
			if p+1 >= len(pat) {
				panic(errEndsWithPercent)
			}
			switch c := pat[p+1]; {
			case c == 'b':
				if s = m.matchBalance(s, p+2); s == -1 {
					break loop
				}
				p += 4
				continue
			case c == 'f':
				p += 2
				if p >= len(pat) || pat[p] != '[' {
					panic(errFrontier)
				}
				ep := m.classEnd(p)
				var prev, cur byte // '\0' outside the subject, as in C
				if s > 0 {
					prev = src[s-1]
				}
				if s < len(src) {
					cur = src[s]
				}
				if !m.matchBracketClass(prev, p, ep-1) && m.matchBracketClass(cur, p, ep-1) {
					p = ep
					continue
				}
				s = -1
				break loop
			case '0' <= c && c <= '9':
				if s = m.matchCapture(s, c); s == -1 {
					break loop
				}
				p += 2
				continue
			}
		}
		// A single-character class, possibly followed by a quantifier.
		ep := m.classEnd(p)
		var q byte
		if ep < len(pat) {
			q = pat[ep]
		}
		if !m.singleMatch(s, p, ep) {
			if q == '*' || q == '?' || q == '-' { // may match zero times
				p = ep + 1
				continue
			}
			s = -1
			break
		}
		switch q {
		case '?':
			if res := m.match(s+1, ep+1); res != -1 {
				s = res
				break loop
			}
			p = ep + 1
		case '+':
			s = m.maxExpand(s+1, p, ep)
			break loop
		case '*':
			s = m.maxExpand(s, p, ep)
			break loop
		case '-':
			s = m.minExpand(s, p, ep)
			break loop
		default:
			s++
			p = ep
		}
	}
	m.depth++
	return s
}

func (m *Matcher) startCapture(s, p, what int) int {
	if m.level >= MaxCaptures {
		panic(errTooManyCaptures)
	}
	m.capture[m.level] = capture{init: s, len: what}
	m.level++
	res := m.match(s, p)
	if res == -1 {
		m.level--
	}
	return res
}

func (m *Matcher) endCapture(s, p int) int {
	l := m.captureToClose()
	m.capture[l].len = s - m.capture[l].init
	res := m.match(s, p)
	if res == -1 {
		m.capture[l].len = capUnfinished
	}
	return res
}

func (m *Matcher) captureToClose() int {
	for l := m.level - 1; l >= 0; l-- {
		if m.capture[l].len == capUnfinished {
			return l
		}
	}
	panic(errInvalidCapture)
}

// matchCapture matches a back-reference %1-%9 (the digit is c).
func (m *Matcher) matchCapture(s int, c byte) int {
	l := int(c) - '1'
	if l < 0 || l >= m.level || m.capture[l].len == capUnfinished {
		panic(errCaptureIndex(l + 1))
	}
	cp := m.capture[l]
	if cp.len == capPosition {
		// In C the length -2 becomes a huge size_t that never fits.
		return -1
	}
	m.AddSteps(cp.len >> 4)
	if len(m.src)-s >= cp.len && m.src[s:s+cp.len] == m.src[cp.init:cp.init+cp.len] {
		return s + cp.len
	}
	return -1
}

func (m *Matcher) matchBalance(s, p int) int {
	if p+1 >= len(m.pat) {
		panic(errBalanceArgs)
	}
	src := m.src
	if s >= len(src) || src[s] != m.pat[p] {
		return -1
	}
	b, e := m.pat[p], m.pat[p+1]
	cont := 1
	for s++; s < len(src); s++ {
		m.tick()
		if c := src[s]; c == e {
			if cont--; cont == 0 {
				return s + 1
			}
		} else if c == b {
			cont++
		}
	}
	return -1
}

func (m *Matcher) maxExpand(s, p, ep int) int {
	i := 0
	for m.singleMatch(s+i, p, ep) {
		i++
		m.tick()
	}
	// Try the longest run first, then give back one repetition at a time.
	for ; i >= 0; i-- {
		if res := m.match(s+i, ep+1); res != -1 {
			return res
		}
	}
	return -1
}

func (m *Matcher) minExpand(s, p, ep int) int {
	for {
		if res := m.match(s, ep+1); res != -1 {
			return res
		}
		if !m.singleMatch(s, p, ep) {
			return -1
		}
		s++
	}
}

// classEnd returns the index just after the single-character class that
// starts at p.
func (m *Matcher) classEnd(p int) int {
	pat := m.pat
	c := pat[p]
	p++
	switch c {
	case '%':
		if p >= len(pat) {
			panic(errEndsWithPercent)
		}
		return p + 1
	case '[':
		if p < len(pat) && pat[p] == '^' {
			p++
		}
		// The first character is part of the set even if it is ']'.
		for {
			if p >= len(pat) {
				panic(errMissingBracket)
			}
			c := pat[p]
			p++
			if c == '%' && p < len(pat) {
				p++ // an escaped character, e.g. %]
			}
			if p < len(pat) && pat[p] == ']' {
				return p + 1
			}
		}
	}
	return p
}

// singleMatch reports whether src[s] matches the class pat[p:ep].
func (m *Matcher) singleMatch(s, p, ep int) bool {
	if s >= len(m.src) {
		return false
	}
	return m.classMatch(m.src[s], p, ep)
}

// classMatch reports whether c matches the class pat[p:ep].
func (m *Matcher) classMatch(c byte, p, ep int) bool {
	switch pc := m.pat[p]; pc {
	case '.':
		return true
	case '%':
		return matchClass(c, m.pat[p+1])
	case '[':
		return m.matchBracketClass(c, p, ep-1)
	default:
		return pc == c
	}
}

// matchBracketClass matches c against the set pat[p:ec+1], p at '[' and
// ec at the closing ']'.
func (m *Matcher) matchBracketClass(c byte, p, ec int) bool {
	pat := m.pat
	// A long set costs time per subject byte; count it.
	m.pending += (ec - p) >> 3
	sig := true
	if pat[p+1] == '^' {
		sig = false
		p++
	}
	for p++; p < ec; p++ {
		switch {
		case pat[p] == '%':
			p++
			if matchClass(c, pat[p]) {
				return sig
			}
		case pat[p+1] == '-' && p+2 < ec:
			p += 2
			if pat[p-2] <= c && c <= pat[p] {
				return sig
			}
		case pat[p] == c:
			return sig
		}
	}
	return !sig
}

// Character class bits of the C locale.
const (
	cAlpha = 1 << iota
	cCntrl
	cDigit
	cGraph
	cLower
	cPunct
	cSpace
	cUpper
	cXDigit
)

var ctype = func() (t [256]uint16) {
	for c := range 256 {
		var f uint16
		switch {
		case 'a' <= c && c <= 'z':
			f |= cAlpha | cLower
		case 'A' <= c && c <= 'Z':
			f |= cAlpha | cUpper
		case '0' <= c && c <= '9':
			f |= cDigit
		}
		if c < 32 || c == 127 {
			f |= cCntrl
		}
		if 33 <= c && c <= 126 {
			f |= cGraph
			if f&(cAlpha|cDigit) == 0 {
				f |= cPunct
			}
		}
		if c == ' ' || '\t' <= c && c <= '\r' {
			f |= cSpace
		}
		if '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' {
			f |= cXDigit
		}
		t[c] = f
	}
	return t
}()

// classBits maps a class letter (lower case) to its bits; 'w' is alpha or
// digit, and 'z' (deprecated in 5.2 but still accepted) is handled apart.
var classBits = [256]uint16{
	'a': cAlpha, 'c': cCntrl, 'd': cDigit, 'g': cGraph, 'l': cLower,
	'p': cPunct, 's': cSpace, 'u': cUpper, 'w': cAlpha | cDigit, 'x': cXDigit,
}

// matchClass matches c against %cl: a class letter (upper case is the
// complement) or, for any other cl, cl itself.
func matchClass(c, cl byte) bool {
	lower := cl
	if 'A' <= cl && cl <= 'Z' {
		lower = cl + ('a' - 'A')
	}
	var res bool
	if bits := classBits[lower]; bits != 0 {
		res = ctype[c]&bits != 0
	} else if lower == 'z' {
		res = c == 0
	} else {
		return cl == c
	}
	if lower != cl {
		return !res
	}
	return res
}

// isLiteral reports whether a pattern byte at the start of an item stands
// for itself with no special meaning.
func isLiteral(c byte) bool {
	switch c {
	case '^', '$', '*', '+', '?', '.', '(', ')', '[', '%', '-':
		return false
	}
	return true
}

// isOptional reports whether quantifier byte q lets the previous item match
// zero times.
func isOptional(q byte) bool { return q == '*' || q == '?' || q == '-' }

// HasSpecials reports whether pattern contains any byte that is special in
// a pattern; string.find does a plain search when it does not.
func HasSpecials(pattern string) bool {
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '^', '$', '*', '+', '?', '.', '(', '[', '%', '-':
			return true
		}
	}
	return false
}
