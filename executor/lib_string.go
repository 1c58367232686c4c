package executor

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"

	lua "github.com/Shopify/go-lua"

	"github.com/picloud/picloud/executor/internal/luapattern"
)

// stringFunctions replace or complete go-lua's string library: it has no
// match, gmatch or gsub, its find ignores patterns, reverse works on runes,
// lower/upper are Unicode-aware (and mangle invalid UTF-8), and format
// panics on malformed input and formats %g, %s and infinities unlike C.
func (s *state) stringFunctions() []lua.RegistryFunction {
	return []lua.RegistryFunction{
		{Name: "find", Function: func(l *lua.State) int { return s.strFind(l, true) }},
		{Name: "match", Function: func(l *lua.State) int { return s.strFind(l, false) }},
		{Name: "gmatch", Function: s.strGmatch},
		{Name: "gsub", Function: s.strGsub},
		{Name: "format", Function: s.strFormat},
		{Name: "reverse", Function: s.strReverse},
		{Name: "lower", Function: s.strLower},
		{Name: "upper", Function: s.strUpper},
	}
}

// stepsPerInstruction converts pattern-matching steps into the instruction
// budget. On the development machine a step costs 7 to 10 ns
// (BenchmarkMatcher reports ns/step) and a VM instruction 7 to 90 (see
// DefaultInstructions); at one instruction per two steps a backtracking
// pattern burns the budget about as fast as table-heavy Lua code.
const stepsPerInstruction = 2

// matchers recycles matchers (each holds room for 32 captures). A pool, not
// one matcher per state, because a gsub callback may itself match.
var matchers = sync.Pool{New: func() any { return new(luapattern.Matcher) }}

func (s *state) getMatcher() *luapattern.Matcher {
	m := matchers.Get().(*luapattern.Matcher)
	m.Step = s.chargeSteps
	return m
}

// putMatcher reports the last steps and recycles m. Matchers abandoned by
// an error are simply left to the garbage collector.
func putMatcher(m *luapattern.Matcher) {
	m.Flush()
	m.Step = nil
	m.Reset()
	matchers.Put(m)
}

func (s *state) chargeSteps(n int) { s.charge(int64(n / stepsPerInstruction)) }

// patternError raises a pattern error the way Lua does: the message
// prefixed with the calling Lua code's position.
func patternError(l *lua.State, err error) {
	lua.Errorf(l, "%s", err.Error())
}

// checkString is lua.CheckString with numbers converted as Lua 5.2 does
// (go-lua writes infinities as +Inf), and without an allocation.
func checkString(l *lua.State, idx int) string {
	switch l.TypeOf(idx) {
	case lua.TypeString:
		// ToValue, not ToString: go-lua's ToString writes the string back
		// into the stack slot, an allocation on every call.
		str, _ := l.ToValue(idx).(string)
		return str
	case lua.TypeNumber:
		n, _ := l.ToNumber(idx)
		return numberString(n)
	}
	return lua.CheckString(l, idx)
}

// numberStringArg wraps one of go-lua's string functions that take the
// string as their first argument (string.byte, len, sub): a number there is
// converted as Lua 5.2 writes it, not by go-lua, which writes the
// infinities and NaN "+Inf", "-Inf" and "NaN" (string.len(1/0) was 4).
// Finite numbers are written alike by both and left to go-lua.
func numberStringArg(f lua.Function) lua.Function {
	return func(l *lua.State) int {
		if l.TypeOf(1) == lua.TypeNumber {
			if n, _ := l.ToNumber(1); math.IsInf(n, 0) || math.IsNaN(n) {
				l.PushString(numberString(n))
				l.Replace(1)
			}
		}
		return f(l)
	}
}

// luaTonumber is go-lua's tonumber, except that a decimal beyond the float
// range is an infinity (and one below it zero), as C's strtod makes it in
// Lua 5.2: tonumber("1e500") is inf, where go-lua gives nil. Only the
// library function is changed; the VM's own conversions ("1e500" + 0, the
// literal 1e500 in source) are go-lua's (see doc.go).
func luaTonumber(orig lua.Function) lua.Function {
	return func(l *lua.State) int {
		if l.IsNoneOrNil(2) && l.TypeOf(1) == lua.TypeString {
			str, _ := l.ToValue(1).(string)
			if f, ok := outOfRangeDecimal(str); ok {
				l.PushNumber(f)
				return 1
			}
		}
		return orig(l)
	}
}

// decimalNumber is Lua's decimal numeral: digits with an optional point and
// exponent (no hexadecimal, no "inf" or "nan", which strconv would take).
var decimalNumber = regexp.MustCompile(`^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$`)

// outOfRangeDecimal converts str, surrounded by Lua's whitespace, if it is
// a decimal numeral that strconv refuses only for its range.
func outOfRangeDecimal(str string) (float64, bool) {
	str = strings.Trim(str, " \f\n\r\t\v")
	if !decimalNumber.MatchString(str) {
		return 0, false
	}
	f, err := strconv.ParseFloat(str, 64)
	if !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	return f, true
}

// intArg reads an integer argument, truncating like C's cast but clamping
// what does not fit an int (go-lua's int(n) turns 1e300 into a negative
// number, which would make string.find(s, p, 1e300) search from the start).
func intArg(l *lua.State, idx, def int) int {
	if l.IsNoneOrNil(idx) {
		return def
	}
	n := lua.CheckNumber(l, idx)
	switch {
	case math.IsNaN(n):
		return 0
	case n >= maxIntArg:
		return maxIntArg
	case n <= -maxIntArg:
		return -maxIntArg
	}
	return int(n)
}

// maxIntArg is the largest integer argument: 2^53, where float64 stops
// counting every integer, or less where int is 32 bits (armv7), which is
// past any string's length there anyway.
const maxIntArg = min(1<<53, math.MaxInt)

// relativePos turns a negative string position into one from the end, as
// Lua's posrelat does.
func relativePos(pos, n int) int {
	if pos >= 0 {
		return pos
	}
	if -pos > n {
		return 0
	}
	return n + pos + 1
}

// strFind is string.find (find) and string.match (!find).
func (s *state) strFind(l *lua.State, find bool) int {
	src := checkString(l, 1)
	pat := checkString(l, 2)
	init := relativePos(intArg(l, 3, 1), len(src))
	if init < 1 {
		init = 1
	} else if init > len(src)+1 {
		l.PushNil()
		return 1
	}
	if find && (l.ToBoolean(4) || !luapattern.HasSpecials(pat)) {
		s.chargeBytes(len(src) - init + 1)
		if i := strings.Index(src[init-1:], pat); i >= 0 {
			l.PushInteger(init + i)
			l.PushInteger(init + i + len(pat) - 1)
			return 2
		}
		l.PushNil()
		return 1
	}
	m := s.getMatcher()
	start, end, err := m.Find(src, pat, init-1)
	if err != nil {
		patternError(l, err)
	}
	if start < 0 {
		putMatcher(m)
		l.PushNil()
		return 1
	}
	n := 0
	if find {
		l.PushInteger(start + 1)
		l.PushInteger(end)
		n = 2
	}
	n += pushCaptures(l, m, src, start, end, !find)
	putMatcher(m)
	return n
}

// pushCaptures pushes the captures of m's last match [s, e) of src. With
// whole set, a pattern without captures yields the whole match.
func pushCaptures(l *lua.State, m *luapattern.Matcher, src string, s, e int, whole bool) int {
	n := m.NumCaptures()
	if n == 0 && whole {
		n = 1
	}
	lua.CheckStackWithMessage(l, n, "too many captures")
	for i := range n {
		pushCapture(l, m, src, i, s, e)
	}
	return n
}

func pushCapture(l *lua.State, m *luapattern.Matcher, src string, i, s, e int) {
	c, err := m.Capture(i, s, e)
	if err != nil {
		patternError(l, err)
	}
	if c.Position {
		l.PushInteger(c.Start + 1)
	} else {
		l.PushString(src[c.Start:c.End])
	}
}

// strGmatch is string.gmatch. As in Lua 5.2, a leading '^' is not an
// anchor, and after an empty match the next search starts one byte later
// (so "a*" over "aaa" yields "aaa" and then "").
func (s *state) strGmatch(l *lua.State) int {
	src := checkString(l, 1)
	pat := checkString(l, 2)
	pos := 0
	// The iterator owns its matcher (it never runs Lua code while
	// matching, so it cannot be re-entered), which keeps the matcher's
	// per-pattern cache across iterations.
	m := &luapattern.Matcher{Step: s.chargeSteps}
	l.PushGoFunction(s.guard("string.gmatch iterator", func(l *lua.State) int {
		if pos > len(src) {
			return 0
		}
		start, e, err := m.Scan(src, pat, pos)
		if err != nil {
			patternError(l, err)
		}
		m.Flush()
		if start < 0 {
			pos = len(src) + 1
			return 0
		}
		pos = e
		if e == start {
			pos++
		}
		return pushCaptures(l, m, src, start, e, true)
	}))
	return 1
}

// strGsub is string.gsub.
func (s *state) strGsub(l *lua.State) int {
	src := checkString(l, 1)
	pat := checkString(l, 2)
	tr := l.TypeOf(3)
	lua.ArgumentCheck(l, tr == lua.TypeNumber || tr == lua.TypeString || tr == lua.TypeFunction || tr == lua.TypeTable,
		3, "string/function/table expected")
	maxN := intArg(l, 4, len(src)+1)
	if maxN < 0 {
		maxN = math.MaxInt // Lua 5.2 reads the count as a size_t: -1 is no limit
	}
	var repl string
	if tr == lua.TypeNumber || tr == lua.TypeString {
		repl = checkString(l, 3)
	}
	anchor := strings.HasPrefix(pat, "^")
	if anchor {
		pat = pat[1:]
	}
	m := s.getMatcher()
	var b strings.Builder
	b.Grow(len(src))
	// Lua tries every position in turn; Scan finds the next one that
	// matches, and the bytes skipped are copied unchanged as Lua would.
	n, pos := 0, 0
	for n < maxN {
		start := pos
		var e int
		var err error
		if anchor {
			e, err = m.MatchAt(src, pat, pos)
		} else {
			start, e, err = m.Scan(src, pat, pos)
		}
		if err != nil {
			patternError(l, err)
		}
		if e < 0 {
			break
		}
		growCheck(l, &b, start-pos)
		b.WriteString(src[pos:start])
		n++
		s.addReplacement(l, m, &b, src, start, e, tr, repl)
		switch {
		case e > start:
			pos = e
		case start < len(src):
			growCheck(l, &b, 1)
			b.WriteByte(src[start])
			pos = start + 1
		default:
			pos = len(src) + 1 // an empty match at the end: done
		}
		if pos > len(src) || anchor {
			break
		}
	}
	if pos < len(src) {
		growCheck(l, &b, len(src)-pos)
		b.WriteString(src[pos:])
	}
	putMatcher(m)
	l.PushString(b.String())
	l.PushInteger(n)
	return 2
}

// growCheck fails the call before the result would exceed maxStringBuild:
// a replacement can multiply the subject's size.
func growCheck(l *lua.State, b *strings.Builder, n int) {
	if b.Len()+n > maxStringBuild {
		lua.Errorf(l, "%s", fmt.Sprintf("resulting string too large (limit %d bytes)", maxStringBuild))
	}
}

// addReplacement appends the replacement of the match [s, e) of src.
func (s *state) addReplacement(l *lua.State, m *luapattern.Matcher, b *strings.Builder, src string, ms, me int, tr lua.Type, repl string) {
	switch tr {
	case lua.TypeTable:
		pushCapture(l, m, src, 0, ms, me)
		l.Table(3)
	case lua.TypeFunction:
		l.PushValue(3)
		n := pushCaptures(l, m, src, ms, me, true)
		l.Call(n, 1)
	default:
		m.AddSteps(len(repl) >> 5)
		if strings.IndexByte(repl, '%') < 0 {
			growCheck(l, b, len(repl))
			b.WriteString(repl)
			return
		}
		for i := 0; i < len(repl); i++ {
			c := repl[i]
			if c != '%' {
				growCheck(l, b, 1)
				b.WriteByte(c)
				continue
			}
			if i++; i < len(repl) {
				c = repl[i]
			} else {
				c = 0
			}
			switch {
			case c == '%':
				growCheck(l, b, 1)
				b.WriteByte('%')
			case c == '0':
				growCheck(l, b, me-ms)
				b.WriteString(src[ms:me])
			case '1' <= c && c <= '9':
				cp, err := m.Capture(int(c-'1'), ms, me)
				if err != nil {
					patternError(l, err)
				}
				if cp.Position {
					growCheck(l, b, 20)
					b.WriteString(strconv.Itoa(cp.Start + 1))
				} else {
					growCheck(l, b, cp.End-cp.Start)
					b.WriteString(src[cp.Start:cp.End])
				}
			default:
				lua.Errorf(l, "%s", "invalid use of '%' in replacement string")
			}
		}
		return
	}
	// Table or function result: false or nil keeps the original text.
	var out string
	switch t := l.TypeOf(-1); {
	case !l.ToBoolean(-1):
		out = src[ms:me]
	case t == lua.TypeString || t == lua.TypeNumber:
		out = checkString(l, -1)
	default:
		lua.Errorf(l, "%s", "invalid replacement value (a "+lua.TypeNameOf(l, -1)+")")
	}
	l.Pop(1)
	m.AddSteps(len(out) >> 5)
	growCheck(l, b, len(out))
	b.WriteString(out)
}

// strReverse, strLower, strUpper and strFormat charge the bytes they write
// to the budget, as string.rep does: a 16 MiB copy costs milliseconds.
func (s *state) strReverse(l *lua.State) int {
	src := checkString(l, 1)
	s.chargeBytes(len(src))
	b := make([]byte, len(src))
	for i := range len(src) {
		b[len(src)-1-i] = src[i]
	}
	l.PushString(string(b))
	return 1
}

// strLower and strUpper map ASCII letters only, as C's tolower/toupper do
// in the C locale; other bytes, including invalid UTF-8, pass unchanged.
func (s *state) strLower(l *lua.State) int {
	src := checkString(l, 1)
	s.chargeBytes(len(src))
	l.PushString(mapASCII(src, 'A', 'Z'))
	return 1
}

func (s *state) strUpper(l *lua.State) int {
	src := checkString(l, 1)
	s.chargeBytes(len(src))
	l.PushString(mapASCII(src, 'a', 'z'))
	return 1
}

// mapASCII flips the case of the letters lo..hi (bit 0x20 is the case bit).
func mapASCII(src string, lo, hi byte) string {
	i := 0
	for i < len(src) && (src[i] < lo || src[i] > hi) {
		i++
	}
	if i == len(src) {
		return src
	}
	b := []byte(src)
	for ; i < len(b); i++ {
		if lo <= b[i] && b[i] <= hi {
			b[i] ^= 0x20
		}
	}
	return string(b)
}

// numberString converts a number as Lua 5.2 does with "%.14g", including
// C's spelling of infinities and NaNs (go-lua writes +Inf, -Inf, NaN).
// x86 produces a NaN with the sign bit set for 0/0, which C prints as
// "-nan"; Lua 5.2 on Linux shows exactly that.
func numberString(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e14 { // integral: the common case
		if f == 0 && math.Signbit(f) {
			return "-0"
		}
		return strconv.FormatInt(int64(f), 10)
	}
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		if math.Signbit(f) {
			return "-nan"
		}
		return "nan"
	}
	return strconv.FormatFloat(f, 'g', 14, 64)
}

// toStringMeta is lua.ToStringMeta with Lua 5.2's number format: it pushes
// the string form of the value at idx (using __tostring if present) and
// returns it; ok is false when __tostring returned something other than a
// string or number (which is left on the stack).
func toStringMeta(l *lua.State, idx int) (string, bool) {
	idx = l.AbsIndex(idx)
	if lua.CallMeta(l, idx, "__tostring") {
		switch l.TypeOf(-1) {
		case lua.TypeString:
			return l.ToString(-1)
		case lua.TypeNumber:
			str := checkString(l, -1)
			l.Pop(1)
			l.PushString(str)
			return str, true
		}
		return "", false
	}
	if l.TypeOf(idx) == lua.TypeNumber {
		str := checkString(l, idx)
		l.PushString(str)
		return str, true
	}
	return lua.ToStringMeta(l, idx)
}

// luaTostring replaces go-lua's tostring for the number format. As in Lua
// 5.2, whatever __tostring returns is returned.
func luaTostring(l *lua.State) int {
	lua.CheckAny(l, 1)
	toStringMeta(l, 1)
	return 1
}

// strFormat is string.format following Lua 5.2's str_format: conversions
// c d i o u x X e E f g G a A q s, flags "-+ #0", width and precision of at
// most two digits each (so no single item can be huge), and a clean error
// for anything else.
func (s *state) strFormat(l *lua.State) int {
	fs := checkString(l, 1)
	top := l.Top()
	arg := 1
	b := make([]byte, 0, len(fs)+16)
	for i := 0; i < len(fs); {
		c := fs[i]
		i++
		if c != '%' {
			b = append(b, c)
			continue
		}
		if i < len(fs) && fs[i] == '%' {
			b = append(b, '%')
			i++
			continue
		}
		if arg++; arg > top {
			lua.ArgumentError(l, arg, "no value")
		}
		var sp formatSpec
		i = sp.scan(l, fs, i)
		b = sp.format(l, b, arg)
		if len(b) > maxStringBuild {
			lua.Errorf(l, "%s", fmt.Sprintf("resulting string too large (limit %d bytes)", maxStringBuild))
		}
	}
	s.chargeBytes(len(b))
	l.PushString(string(b))
	return 1
}

// formatSpec is one conversion of string.format.
type formatSpec struct {
	flags       string
	width, prec int // prec < 0: none
	conv        byte
}

func (sp *formatSpec) has(flag byte) bool { return strings.IndexByte(sp.flags, flag) >= 0 }

// scan parses the conversion starting at fs[i] (after the '%') and returns
// the index after it. The checks and messages are those of Lua's
// scanformat.
func (sp *formatSpec) scan(l *lua.State, fs string, i int) int {
	const flags = "-+ #0"
	start := i
	for i < len(fs) && strings.IndexByte(flags, fs[i]) >= 0 {
		i++
	}
	if i-start > len(flags) {
		lua.Errorf(l, "%s", "invalid format (repeated flags)")
	}
	sp.flags = fs[start:i]
	digits := func() int {
		n := -1
		for k := 0; k < 2 && i < len(fs) && isDigit(fs[i]); k++ {
			n = max(n, 0)*10 + int(fs[i]-'0')
			i++
		}
		return n
	}
	sp.width = max(digits(), 0)
	sp.prec = -1
	if i < len(fs) && fs[i] == '.' {
		i++
		sp.prec = max(digits(), 0)
	}
	if i < len(fs) && isDigit(fs[i]) {
		lua.Errorf(l, "%s", "invalid format (width or precision too long)")
	}
	if i >= len(fs) {
		lua.Errorf(l, "%s", "invalid option '%' to 'format'")
	}
	sp.conv = fs[i]
	return i + 1
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// format appends the formatted argument arg.
func (sp *formatSpec) format(l *lua.State, b []byte, arg int) []byte {
	switch sp.conv {
	case 'c':
		lua.CheckNumber(l, arg)
		return sp.pad(b, string([]byte{byte(intArg(l, arg, 0))}))
	case 'd', 'i':
		n := lua.CheckNumber(l, arg)
		// Lua 5.2 truncates, like its C cast; 5.3 would refuse 3.5.
		lua.ArgumentCheck(l, n >= -0x1p63 && n < 0x1p63, arg, "not a number in proper range")
		if int64(n) == 0 && sp.prec == 0 {
			return sp.pad(b, sp.sign(false)) // C keeps the sign, Go drops it
		}
		return fmt.Appendf(b, sp.goVerb(sp.flags, 'd'), int64(n))
	case 'o', 'u', 'x', 'X':
		n := lua.CheckNumber(l, arg)
		lua.ArgumentCheck(l, n > -1 && n < 0x1p64, arg, "not a non-negative number in proper range")
		u := uint64(0)
		if n >= 1 {
			u = uint64(n)
		}
		// C applies '+' and ' ' to signed conversions only, and "%#x" of 0
		// is "0"; Go would write "+ff" and "0x0".
		flags := strings.NewReplacer("+", "", " ", "").Replace(sp.flags)
		if u == 0 && sp.conv != 'o' {
			flags = strings.ReplaceAll(flags, "#", "")
		}
		if u == 0 && sp.prec == 0 && sp.conv == 'o' && sp.has('#') {
			return sp.pad(b, "0") // '#' forces a leading zero; Go prints nothing
		}
		verb := rune(sp.conv)
		if verb == 'u' {
			verb = 'd'
		}
		return fmt.Appendf(b, sp.goVerb(flags, verb), u)
	case 'e', 'E', 'f', 'g', 'G':
		n := lua.CheckNumber(l, arg)
		if math.IsInf(n, 0) || math.IsNaN(n) {
			return sp.nonFinite(b, n)
		}
		prec := sp.prec
		if prec < 0 {
			prec = 6 // C's default; Go's %g would print the shortest form
		}
		spec := *sp
		spec.prec = prec
		return fmt.Appendf(b, spec.goVerb(sp.flags, rune(sp.conv)), n)
	case 'a', 'A':
		n := lua.CheckNumber(l, arg)
		if math.IsInf(n, 0) || math.IsNaN(n) {
			return sp.nonFinite(b, n)
		}
		return sp.hexFloat(b, n)
	case 'q':
		return appendQuoted(b, checkString(l, arg))
	case 's':
		str, ok := toStringMeta(l, arg)
		if !ok {
			lua.Errorf(l, "%s", "'__tostring' must return a string")
		}
		l.Pop(1)
		if sp.prec < 0 && len(str) >= 100 {
			return append(b, str...) // as Lua: no width applies then
		}
		if sp.prec >= 0 && len(str) > sp.prec {
			str = str[:sp.prec] // bytes, not runes as Go's %.Ns would
		}
		return sp.pad(b, str)
	}
	lua.Errorf(l, "%s", fmt.Sprintf("invalid option '%%%c' to 'format'", sp.conv))
	return nil
}

// goVerb rebuilds the conversion for Go's fmt, whose numeric verbs agree
// with C's once the precision is explicit.
func (sp *formatSpec) goVerb(flags string, verb rune) string {
	var b strings.Builder
	b.WriteByte('%')
	b.WriteString(flags)
	if sp.width > 0 {
		b.WriteString(strconv.Itoa(sp.width))
	}
	if sp.prec >= 0 {
		b.WriteByte('.')
		b.WriteString(strconv.Itoa(sp.prec))
	}
	b.WriteRune(verb)
	return b.String()
}

// pad right-aligns str in the field width with spaces, or left-aligns it
// for the '-' flag; widths count bytes, as in C.
func (sp *formatSpec) pad(b []byte, str string) []byte {
	fill := sp.width - len(str)
	if fill > 0 && !sp.has('-') {
		b = append(b, strings.Repeat(" ", fill)...)
	}
	b = append(b, str...)
	if fill > 0 && sp.has('-') {
		b = append(b, strings.Repeat(" ", fill)...)
	}
	return b
}

// sign is the sign prefix C prints for a number with these flags.
func (sp *formatSpec) sign(neg bool) string {
	switch {
	case neg:
		return "-"
	case sp.has('+'):
		return "+"
	case sp.has(' '):
		return " "
	}
	return ""
}

// nonFinite writes inf or nan as glibc does: sign per flags, no zero
// padding, upper case for the upper-case conversions.
func (sp *formatSpec) nonFinite(b []byte, n float64) []byte {
	word := "inf"
	if math.IsNaN(n) {
		word = "nan"
	}
	if sp.conv == 'E' || sp.conv == 'G' || sp.conv == 'A' {
		word = strings.ToUpper(word)
	}
	return sp.pad(b, sp.sign(math.Signbit(n))+word)
}

// hexFloat writes %a/%A as glibc does. Go's %x for floats differs in the
// details: it normalises after rounding ("%.0a" of 3.7 is 0x1p+2, glibc
// 0x2p+1), writes two exponent digits at least and normalises subnormals,
// so the digits are produced here from the bits.
func (sp *formatSpec) hexFloat(b []byte, n float64) []byte {
	const hexDigits = "0123456789abcdef"
	bits := math.Float64bits(n)
	exp := int(bits >> 52 & 0x7ff)
	mant := bits & (1<<52 - 1) // 13 hex digits after the point
	switch {
	case exp == 0 && mant == 0: // zero: 0x0p+0
	case exp == 0: // subnormal: 0x0.xxxp-1022
		exp = -1022
	default:
		mant |= 1 << 52
		exp -= 1023
	}
	digits := 13
	if sp.prec < 0 {
		for digits > 0 && mant&0xf == 0 {
			mant >>= 4
			digits--
		}
	} else if sp.prec < 13 {
		// Round to nearest, ties to even, like printf in the default
		// rounding mode; a carry may make the leading digit 2.
		shift := uint(4 * (13 - sp.prec))
		rem := mant & (1<<shift - 1)
		mant >>= shift
		if half := uint64(1) << (shift - 1); rem > half || rem == half && mant&1 == 1 {
			mant++
		}
		digits = sp.prec
	}
	body := []byte{'0', 'x', hexDigits[mant>>(4*digits)]}
	if digits > 0 || sp.has('#') {
		body = append(body, '.')
	}
	for i := digits - 1; i >= 0; i-- {
		body = append(body, hexDigits[mant>>(4*i)&0xf])
	}
	for i := digits; i < sp.prec; i++ {
		body = append(body, '0')
	}
	body = append(body, 'p')
	if exp >= 0 {
		body = append(body, '+')
	}
	body = strconv.AppendInt(body, int64(exp), 10)
	if sp.conv == 'A' {
		body = bytes.ToUpper(body)
	}
	sign := sp.sign(math.Signbit(n))
	fill := sp.width - len(sign) - len(body)
	switch {
	case fill <= 0 || sp.has('-'):
		b = append(append(b, sign...), body...)
		if fill > 0 {
			b = append(b, strings.Repeat(" ", fill)...)
		}
	case sp.has('0'): // zeros go after the sign and the 0x prefix
		b = append(append(b, sign...), body[:2]...)
		b = append(b, strings.Repeat("0", fill)...)
		b = append(b, body[2:]...)
	default:
		b = append(b, strings.Repeat(" ", fill)...)
		b = append(append(b, sign...), body...)
	}
	return b
}

// appendQuoted is Lua 5.2's %q: a string literal that reads back as the
// same bytes. Control characters become decimal escapes, padded to three
// digits when a digit follows; bytes above 127 are written as they are.
//
// It stops early once b passes maxStringBuild (the caller then fails the
// call), and writes escapes without fmt: a 16 MiB string of control bytes
// took 0.7 s in one uninterruptible call, 19 s under the race detector.
func appendQuoted(b []byte, str string) []byte {
	b = append(b, '"')
	for i := 0; i < len(str) && len(b) <= maxStringBuild; i++ {
		c := str[i]
		switch {
		case c == '"' || c == '\\' || c == '\n':
			b = append(b, '\\', c)
		case c < 0x20 || c == 0x7f:
			b = append(b, '\\')
			if i+1 < len(str) && isDigit(str[i+1]) {
				b = append(b, '0'+c/100, '0'+c/10%10, '0'+c%10)
			} else {
				b = strconv.AppendUint(b, uint64(c), 10)
			}
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
