package luajson

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	lua "github.com/Shopify/go-lua"
)

// DecodeOptions tunes Decode. The zero value is usable.
type DecodeOptions struct {
	MaxDepth int // nesting limit; 0 means DefaultMaxDepth
	// ArrayMeta is the absolute stack index of a metatable set on every
	// decoded array (0: none), so that Encode can keep them arrays.
	ArrayMeta int
}

type decoder struct {
	l        *lua.State
	s        string
	pos      int
	depth    int
	maxDepth int
	arrayMT  int
}

// Decode parses one JSON value and pushes it onto the stack: objects become
// tables with string keys, arrays tables with keys 1..n, numbers float64,
// null nil (so a null inside an array leaves a hole and a null member is
// absent). On error nothing is pushed. Strings are kept byte for byte, since
// Lua strings need not be UTF-8.
func Decode(l *lua.State, s string, opts DecodeOptions) error {
	d := decoder{l: l, s: s, maxDepth: opts.MaxDepth, arrayMT: opts.ArrayMeta}
	if d.maxDepth <= 0 {
		d.maxDepth = DefaultMaxDepth
	}
	if d.arrayMT != 0 && !l.IsTable(d.arrayMT) {
		d.arrayMT = 0
	}
	top := l.Top()
	err := d.value()
	if err == nil {
		d.skipSpace()
		if d.pos < len(d.s) {
			err = d.errorf("unexpected %s after top-level value", d.describe())
		}
	}
	if err != nil {
		l.SetTop(top)
		return err
	}
	return nil
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d", ErrSyntax, fmt.Sprintf(format, args...), d.pos)
}

func (d *decoder) describe() string {
	if d.pos >= len(d.s) {
		return "end of input"
	}
	return "character " + strconv.QuoteRune(rune(d.s[d.pos]))
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.s) {
		switch d.s[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) value() error {
	d.skipSpace()
	if d.pos >= len(d.s) {
		return d.errorf("unexpected end of input")
	}
	switch c := d.s[d.pos]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		s, err := d.str()
		if err != nil {
			return err
		}
		d.l.PushString(s)
		return nil
	case c == '-' || '0' <= c && c <= '9':
		return d.number()
	case d.literal("true"):
		d.l.PushBoolean(true)
		return nil
	case d.literal("false"):
		d.l.PushBoolean(false)
		return nil
	case d.literal("null"):
		d.l.PushNil()
		return nil
	}
	return d.errorf("unexpected %s", d.describe())
}

func (d *decoder) literal(word string) bool {
	if len(d.s)-d.pos >= len(word) && d.s[d.pos:d.pos+len(word)] == word {
		d.pos += len(word)
		return true
	}
	return false
}

func (d *decoder) enter() error {
	if d.depth++; d.depth > d.maxDepth {
		return fmt.Errorf("%w: more than %d levels at offset %d", ErrDepth, d.maxDepth, d.pos)
	}
	if !d.l.CheckStack(4) {
		return d.errorf("Lua stack exhausted")
	}
	return nil
}

func (d *decoder) object() error {
	if err := d.enter(); err != nil {
		return err
	}
	l := d.l
	d.pos++ // '{'
	l.NewTable()
	t := l.Top()
	d.skipSpace()
	if d.pos < len(d.s) && d.s[d.pos] == '}' {
		d.pos++
		d.depth--
		return nil
	}
	for {
		d.skipSpace()
		if d.pos >= len(d.s) || d.s[d.pos] != '"' {
			return d.errorf("expected object key, found %s", d.describe())
		}
		key, err := d.str()
		if err != nil {
			return err
		}
		d.skipSpace()
		if d.pos >= len(d.s) || d.s[d.pos] != ':' {
			return d.errorf("expected ':' after object key, found %s", d.describe())
		}
		d.pos++
		l.PushString(key)
		if err := d.value(); err != nil {
			return err
		}
		l.RawSet(t)
		d.skipSpace()
		if d.pos < len(d.s) {
			switch d.s[d.pos] {
			case ',':
				d.pos++
				continue
			case '}':
				d.pos++
				d.depth--
				return nil
			}
		}
		return d.errorf("expected ',' or '}' in object, found %s", d.describe())
	}
}

func (d *decoder) array() error {
	if err := d.enter(); err != nil {
		return err
	}
	l := d.l
	d.pos++ // '['
	l.NewTable()
	t := l.Top()
	if d.arrayMT != 0 {
		l.PushValue(d.arrayMT)
		l.SetMetaTable(t)
	}
	d.skipSpace()
	if d.pos < len(d.s) && d.s[d.pos] == ']' {
		d.pos++
		d.depth--
		return nil
	}
	for i := 1; ; i++ {
		if err := d.value(); err != nil {
			return err
		}
		l.RawSetInt(t, i)
		d.skipSpace()
		if d.pos < len(d.s) {
			switch d.s[d.pos] {
			case ',':
				d.pos++
				continue
			case ']':
				d.pos++
				d.depth--
				return nil
			}
		}
		return d.errorf("expected ',' or ']' in array, found %s", d.describe())
	}
}

func (d *decoder) number() error {
	start := d.pos
	s := d.s
	if d.pos < len(s) && s[d.pos] == '-' {
		d.pos++
	}
	switch {
	case d.pos < len(s) && s[d.pos] == '0':
		d.pos++
	case d.pos < len(s) && '1' <= s[d.pos] && s[d.pos] <= '9':
		d.skipDigits()
	default:
		return d.errorf("invalid number: expected digit, found %s", d.describe())
	}
	if d.pos < len(s) && s[d.pos] == '.' {
		d.pos++
		if !d.skipDigits() {
			return d.errorf("invalid number: expected digit after '.', found %s", d.describe())
		}
	}
	if d.pos < len(s) && (s[d.pos] == 'e' || s[d.pos] == 'E') {
		d.pos++
		if d.pos < len(s) && (s[d.pos] == '+' || s[d.pos] == '-') {
			d.pos++
		}
		if !d.skipDigits() {
			return d.errorf("invalid number: expected exponent digit, found %s", d.describe())
		}
	}
	f, err := strconv.ParseFloat(s[start:d.pos], 64)
	if err != nil || math.IsInf(f, 0) {
		return d.errorf("number %s out of range", s[start:d.pos])
	}
	d.l.PushNumber(f)
	return nil
}

func (d *decoder) skipDigits() bool {
	start := d.pos
	for d.pos < len(d.s) && '0' <= d.s[d.pos] && d.s[d.pos] <= '9' {
		d.pos++
	}
	return d.pos > start
}

// str parses a string literal starting at the opening quote.
func (d *decoder) str() (string, error) {
	d.pos++ // opening quote
	start := d.pos
	s := d.s
	// Fast path: no escapes, the result is a substring of the input.
	for d.pos < len(s) {
		c := s[d.pos]
		if c == '"' {
			d.pos++
			return s[start : d.pos-1], nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", d.errorf("control character %q in string", c)
		}
		d.pos++
	}
	buf := []byte(s[start:d.pos])
	for d.pos < len(s) {
		c := s[d.pos]
		switch {
		case c == '"':
			d.pos++
			return string(buf), nil
		case c < 0x20:
			return "", d.errorf("control character %q in string", c)
		case c != '\\':
			buf = append(buf, c)
			d.pos++
			continue
		}
		d.pos++ // backslash
		if d.pos >= len(s) {
			break
		}
		e := s[d.pos]
		d.pos++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return "", d.errorf("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) {
				// A valid pair is \uD8xx\uDCxx; anything else becomes
				// U+FFFD, as encoding/json does.
				if len(s)-d.pos >= 6 && s[d.pos] == '\\' && s[d.pos+1] == 'u' {
					save := d.pos
					d.pos += 2
					r2, ok := d.hex4()
					if !ok {
						return "", d.errorf("invalid \\u escape")
					}
					if combined := utf16.DecodeRune(r, r2); combined != utf8.RuneError {
						r = combined
					} else {
						d.pos = save // the second escape is decoded on its own
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			d.pos--
			return "", d.errorf("invalid escape '\\%c' in string", e)
		}
	}
	return "", d.errorf("unterminated string")
}

func (d *decoder) hex4() (rune, bool) {
	if len(d.s)-d.pos < 4 {
		return 0, false
	}
	var r rune
	for _, c := range []byte(d.s[d.pos : d.pos+4]) {
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	d.pos += 4
	return r, true
}
