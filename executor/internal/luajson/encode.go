// Package luajson converts between JSON text and values on a go-lua stack.
//
// Both directions work on the stack directly (no intermediate Go values), so
// a request payload or a handler's result is converted in one pass. Arrays
// are told apart from objects by their keys (1..n) and, for tables that are
// empty or have holes, by a caller-supplied "array" metatable that Decode puts
// on every decoded array: this is what keeps `[]` an array after a round trip.
package luajson

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	lua "github.com/Shopify/go-lua"
)

// Defaults applied when an option is zero.
const (
	DefaultMaxDepth = 128
	DefaultMaxBytes = 16 << 20
)

// Errors wrapped (with %w) by Encode and Decode, so callers can tell kinds apart.
var (
	ErrUnsupported = errors.New("cannot encode")
	ErrCycle       = errors.New("cannot encode cyclic table")
	ErrDepth       = errors.New("nesting too deep")
	ErrTooLarge    = errors.New("output too large")
	ErrSyntax      = errors.New("invalid JSON")
)

// tickEvery is how much work Encode does between two calls of Options.Tick:
// a unit is a value visited or a step of a walk over a table's keys.
// Encoding runs in Go, where the VM's instruction hook cannot interrupt it, so
// Tick is what lets a caller bound the time spent on a huge table.
//
// go-lua's next finds the current key by scanning the table's keys from the
// start, so step i of a walk over a hash part costs about i lookups and a
// walk over n keys about n*n/2: a 40,000-key object took 85 s to encode,
// with no Tick in between. A step therefore weighs 1 + i/nextScanUnit,
// which bounds the lookups between two Ticks (to about tickEvery *
// nextScanUnit, some 0.2 s) whatever the table's size, and costs arrays,
// whose steps are cheap, few extra Ticks.
const (
	tickEvery    = 1024
	nextScanUnit = 4096
)

// EncodeOptions tunes Encode. The zero value is usable.
type EncodeOptions struct {
	MaxDepth int // nesting limit; 0 means DefaultMaxDepth
	MaxBytes int // output limit; 0 means DefaultMaxBytes
	// ArrayMeta is the absolute stack index of the metatable that marks a
	// table as an array (0: none). A marked table encodes as an array even
	// when empty or sparse (holes become null).
	ArrayMeta int
	// Tick, when set, is called every few thousand values (or fewer steps
	// of a walk over a large table); a non-nil error stops encoding and is
	// returned unchanged.
	Tick func() error
}

type pathElem struct {
	key   string
	index int // used when key == "" and isIndex
	isIdx bool
}

type encoder struct {
	l        *lua.State
	buf      []byte
	maxDepth int
	maxBytes int
	arrayMT  any
	tick     func() error
	work     int // see tickEvery
	nextTick int
	stack    []any // tables on the current path, for cycle detection
	path     []pathElem
}

// Encode returns the JSON text of the value at index. Strings are emitted with
// invalid UTF-8 replaced by U+FFFD; integral numbers have no fraction; object
// keys are sorted so the output is deterministic (go-lua iterates tables in Go
// map order).
func Encode(l *lua.State, index int, opts EncodeOptions) ([]byte, error) {
	e := encoder{l: l, maxDepth: opts.MaxDepth, maxBytes: opts.MaxBytes, tick: opts.Tick, nextTick: tickEvery}
	if e.maxDepth <= 0 {
		e.maxDepth = DefaultMaxDepth
	}
	if e.maxBytes <= 0 {
		e.maxBytes = DefaultMaxBytes
	}
	if opts.ArrayMeta != 0 && l.IsTable(opts.ArrayMeta) {
		e.arrayMT = l.ToValue(opts.ArrayMeta)
	}
	top := l.Top()
	err := e.value(l.AbsIndex(index), 0)
	l.SetTop(top)
	if err != nil {
		return nil, err
	}
	return e.buf, nil
}

func (e *encoder) pathString() string {
	var b strings.Builder
	b.WriteString("$")
	for _, p := range e.path {
		switch {
		case p.isIdx:
			b.WriteString("[" + strconv.Itoa(p.index) + "]")
		case isIdentifier(p.key):
			b.WriteString("." + p.key)
		default:
			b.WriteString("[" + strconv.Quote(p.key) + "]")
		}
	}
	return b.String()
}

func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9' {
			continue
		}
		return false
	}
	return true
}

func (e *encoder) errorf(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: %s at %s", kind, fmt.Sprintf(format, args...), e.pathString())
}

// step adds work and calls Tick when enough has accumulated.
func (e *encoder) step(work int) error {
	if e.work += work; e.tick != nil && e.work >= e.nextTick {
		e.nextTick = e.work + tickEvery
		return e.tick()
	}
	return nil
}

func (e *encoder) value(idx, depth int) error {
	if err := e.step(1); err != nil {
		return err
	}
	l := e.l
	switch t := l.TypeOf(idx); t {
	case lua.TypeNil, lua.TypeNone:
		e.buf = append(e.buf, "null"...)
	case lua.TypeBoolean:
		e.buf = strconv.AppendBool(e.buf, l.ToBoolean(idx))
	case lua.TypeNumber:
		f, _ := l.ToNumber(idx)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return e.errorf(ErrUnsupported, "%v", f)
		}
		e.buf = AppendNumber(e.buf, f)
	case lua.TypeString:
		s, _ := l.ToString(idx)
		e.buf = AppendString(e.buf, s)
	case lua.TypeTable:
		if err := e.table(idx, depth); err != nil {
			return err
		}
	default:
		return e.errorf(ErrUnsupported, "a %s value", t)
	}
	if len(e.buf) > e.maxBytes {
		return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, e.maxBytes)
	}
	return nil
}

type objectKey struct {
	name  string
	num   float64
	isNum bool
}

func (e *encoder) table(idx, depth int) error {
	l := e.l
	if depth >= e.maxDepth {
		return e.errorf(ErrDepth, "more than %d levels", e.maxDepth)
	}
	id := l.ToValue(idx)
	if slices.Contains(e.stack, id) {
		return e.errorf(ErrCycle, "table refers to itself")
	}
	if !l.CheckStack(4) {
		return e.errorf(ErrDepth, "Lua stack exhausted")
	}
	e.stack = append(e.stack, id)
	defer func() { e.stack = e.stack[:len(e.stack)-1] }()

	marked := false
	if e.arrayMT != nil && l.MetaTable(idx) {
		marked = l.ToValue(-1) == e.arrayMT
		l.Pop(1)
	}

	// First pass: classify without remembering keys, since arrays (the
	// common large case) do not need them.
	count, maxIndex, onlyIndices := 0, 0, true
	l.PushNil()
	for l.Next(idx) {
		l.Pop(1)
		if err := e.step(1 + count/nextScanUnit); err != nil {
			return err
		}
		count++
		if !onlyIndices {
			continue
		}
		if l.TypeOf(-1) == lua.TypeNumber {
			f, _ := l.ToNumber(-1)
			if f >= 1 && f <= 1<<53 && f == math.Trunc(f) {
				maxIndex = max(maxIndex, int(f))
				continue
			}
		}
		onlyIndices = false
	}

	switch {
	case count == 0 && marked:
		e.buf = append(e.buf, "[]"...)
		return nil
	case count == 0:
		e.buf = append(e.buf, "{}"...)
		return nil
	case onlyIndices && (maxIndex == count || marked):
		return e.array(idx, maxIndex, depth)
	}
	return e.object(idx, count, depth)
}

func (e *encoder) array(idx, n, depth int) error {
	l := e.l
	e.buf = append(e.buf, '[')
	e.path = append(e.path, pathElem{isIdx: true})
	for i := 1; i <= n; i++ {
		if i > 1 {
			e.buf = append(e.buf, ',')
		}
		e.path[len(e.path)-1].index = i
		l.RawGetInt(idx, i)
		if err := e.value(l.Top(), depth+1); err != nil {
			return err
		}
		l.Pop(1)
	}
	e.path = e.path[:len(e.path)-1]
	e.buf = append(e.buf, ']')
	return nil
}

func (e *encoder) object(idx, count, depth int) error {
	l := e.l
	keys := make([]objectKey, 0, count)
	l.PushNil()
	for l.Next(idx) {
		l.Pop(1)
		if err := e.step(1 + len(keys)/nextScanUnit); err != nil {
			return err
		}
		switch t := l.TypeOf(-1); t {
		case lua.TypeString:
			s, _ := l.ToString(-1)
			keys = append(keys, objectKey{name: s})
		case lua.TypeNumber:
			f, _ := l.ToNumber(-1)
			if math.IsInf(f, 0) {
				l.Pop(1)
				return e.errorf(ErrUnsupported, "table key %v", f)
			}
			keys = append(keys, objectKey{name: string(AppendNumber(nil, f)), num: f, isNum: true})
		default:
			l.Pop(1)
			return e.errorf(ErrUnsupported, "table key of type %s", t)
		}
	}
	slices.SortFunc(keys, func(a, b objectKey) int { return strings.Compare(a.name, b.name) })
	e.buf = append(e.buf, '{')
	e.path = append(e.path, pathElem{})
	for i, k := range keys {
		if i > 0 {
			if keys[i-1].name == k.name {
				return e.errorf(ErrUnsupported, "table has both a number and a string key %q", k.name)
			}
			e.buf = append(e.buf, ',')
		}
		e.path[len(e.path)-1].key = k.name
		e.buf = AppendString(e.buf, k.name)
		e.buf = append(e.buf, ':')
		if k.isNum {
			l.PushNumber(k.num)
		} else {
			l.PushString(k.name)
		}
		l.RawGet(idx)
		if err := e.value(l.Top(), depth+1); err != nil {
			return err
		}
		l.Pop(1)
	}
	e.path = e.path[:len(e.path)-1]
	e.buf = append(e.buf, '}')
	return nil
}

// AppendNumber appends f the way encoding/json formats a float64, which
// prints integral values without a fraction ("3", not "3.0"). f must be finite.
func AppendNumber(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// Shorten "e-07" to "e-7" like encoding/json does.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string literal. Lua strings are arbitrary
// bytes, so each invalid UTF-8 byte becomes U+FFFD to keep the output valid.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\ufffd"...)
			i++
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript string
		// literals; escaping them costs nothing and makes output safe to embed.
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
