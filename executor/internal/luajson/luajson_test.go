package luajson

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	lua "github.com/Shopify/go-lua"
)

// newState returns a state with an array marker metatable at stack index 1.
func newState() *lua.State {
	l := lua.NewState()
	l.NewTable()
	return l
}

const arrayMeta = 1

func roundTrip(t testing.TB, in string) (string, error) {
	t.Helper()
	l := newState()
	if err := Decode(l, in, DecodeOptions{ArrayMeta: arrayMeta}); err != nil {
		return "", err
	}
	if l.Top() != 2 {
		t.Fatalf("Decode left %d values", l.Top()-1)
	}
	out, err := Encode(l, -1, EncodeOptions{ArrayMeta: arrayMeta})
	if l.Top() != 2 {
		t.Fatalf("Encode changed the stack to %d values", l.Top())
	}
	return string(out), err
}

func TestRoundTrip(t *testing.T) {
	tests := []struct{ in, want string }{
		{`null`, `null`},
		{`true`, `true`},
		{` false `, `false`},
		{`0`, `0`},
		{`-0`, `-0`},
		{`1.0`, `1`},
		{`1.5e3`, `1500`},
		{`1E-7`, `1e-7`},
		{`123456789012345678`, `123456789012345680`},
		{`1e21`, `1e+21`},
		{`""`, `""`},
		{`"a\"\\\/\b\f\n\r\t\u0041\u00e9\ud83d\ude00"`, `"a\"\\/\u0008\u000c\n\r\tAé😀"`},
		{`"\ud800x"`, "\"\ufffdx\""},
		{`"\udc00\ud800"`, "\"\ufffd\ufffd\""},
		{`"\ud800\u0041"`, "\"\ufffdA\""},
		{`"\u2028"`, `"\u2028"`},
		{"\"\xff\"", "\"\ufffd\""},
		{`[]`, `[]`},
		{`[[]]`, `[[]]`},
		{`{}`, `{}`},
		{`[1,"a",true,null,{}]`, `[1,"a",true,null,{}]`},
		{`[null]`, `[]`}, // a trailing null is a hole Lua cannot see
		{`{"b":1,"a":[1,2],"c":{"d":null}}`, `{"a":[1,2],"b":1,"c":{}}`},
		{`{"a":1,"a":2}`, `{"a":2}`},
		{`{"1":"x","2":"y"}`, `{"1":"x","2":"y"}`}, // string keys stay an object
		{"\t\n\r [ 1 , 2 ] \n", `[1,2]`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := roundTrip(t, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		in   string
		kind error
		msg  string
	}{
		{``, ErrSyntax, "unexpected end of input at offset 0"},
		{`   `, ErrSyntax, "unexpected end of input"},
		{`nul`, ErrSyntax, "unexpected character 'n' at offset 0"},
		{`[1 2]`, ErrSyntax, "expected ',' or ']' in array, found character '2' at offset 3"},
		{`{"a" 1}`, ErrSyntax, "expected ':' after object key"},
		{`{a:1}`, ErrSyntax, "expected object key, found character 'a'"},
		{`{"a":1,}`, ErrSyntax, "expected object key, found character '}'"},
		{`[1,]`, ErrSyntax, "unexpected character ']'"},
		{`01`, ErrSyntax, "after top-level value"},
		{`1.`, ErrSyntax, "expected digit after '.'"},
		{`-`, ErrSyntax, "expected digit"},
		{`1e`, ErrSyntax, "expected exponent digit"},
		{`+1`, ErrSyntax, "unexpected character '+'"},
		{`.5`, ErrSyntax, "unexpected character '.'"},
		{`1e400`, ErrSyntax, "number 1e400 out of range"},
		{`"abc`, ErrSyntax, "unterminated string"},
		{`"a\qb"`, ErrSyntax, `invalid escape '\q'`},
		{`"\u12"`, ErrSyntax, `invalid \u escape`},
		{"\"a\nb\"", ErrSyntax, "control character"},
		{`[] []`, ErrSyntax, "after top-level value"},
		{strings.Repeat("[", 129) + strings.Repeat("]", 129), ErrDepth, "more than 128 levels"},
		{strings.Repeat(`{"a":`, 129) + "1" + strings.Repeat("}", 129), ErrDepth, "more than 128 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			l := newState()
			err := Decode(l, tt.in, DecodeOptions{})
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v, want %v containing %q", err, tt.kind, tt.msg)
			}
			if l.Top() != 1 {
				t.Errorf("failed Decode left %d values on the stack", l.Top()-1)
			}
		})
	}
	// Exactly at the limit is fine.
	if _, err := roundTrip(t, strings.Repeat("[", 128)+strings.Repeat("]", 128)); err != nil {
		t.Errorf("depth 128: %v", err)
	}
}

func TestEncodeLimits(t *testing.T) {
	l := newState()
	l.PushString(strings.Repeat("x", 100))
	if _, err := Encode(l, -1, EncodeOptions{MaxBytes: 50}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxBytes: %v", err)
	}

	// Tick is consulted while walking large tables and can stop the walk.
	l.CreateTable(5000, 0)
	for i := 1; i <= 5000; i++ {
		l.PushInteger(i)
		l.RawSetInt(-2, i)
	}
	stop := errors.New("stop")
	calls := 0
	_, err := Encode(l, -1, EncodeOptions{Tick: func() error {
		if calls++; calls == 3 {
			return stop
		}
		return nil
	}})
	if !errors.Is(err, stop) || calls != 3 {
		t.Errorf("Tick: err %v after %d calls", err, calls)
	}

	// A marked array with a hole far away is bounded by MaxBytes, not by
	// its largest index.
	l.NewTable()
	l.PushValue(arrayMeta)
	l.SetMetaTable(-2)
	l.PushInteger(1)
	l.RawSetInt(-2, 1<<40)
	if _, err := Encode(l, -1, EncodeOptions{ArrayMeta: arrayMeta, MaxBytes: 1 << 16}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("sparse array: %v", err)
	}
}

// FuzzDecode checks the decoder against encoding/json: both accept the same
// documents, and a document survives decode+encode with the same meaning
// (up to what Lua cannot represent: null members and trailing null elements).
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"a":[1,2,{"b":null}],"c":"\u00e9","d":-1.5e-3}`, `[]`, `[[],{}]`, `"\ud83d\ude00"`,
		`[1,null,3]`, `{"":""}`, `0`, `-0.0e+0`, `"\u0000"`, "\"\xff\"", `[1,]`, `{"a"}`, `tru`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := roundTrip(t, in)
		var want any
		stdErr := json.Unmarshal([]byte(in), &want)
		if err != nil {
			if errors.Is(err, ErrDepth) {
				return
			}
			if stdErr == nil {
				t.Fatalf("rejected %q (%v), encoding/json accepts it", in, err)
			}
			return
		}
		if stdErr != nil {
			t.Fatalf("accepted %q, encoding/json rejects it: %v", in, stdErr)
		}
		var got any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("output %q of %q is not JSON: %v", out, in, err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(want)) {
			t.Fatalf("%q -> %q changed meaning", in, out)
		}
	})
}

// normalize drops what a Lua table cannot hold: null object members and
// trailing null array elements.
func normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := map[string]any{}
		for k, e := range v {
			if e != nil {
				m[k] = normalize(e)
			}
		}
		return m
	case []any:
		for len(v) > 0 && v[len(v)-1] == nil {
			v = v[:len(v)-1]
		}
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = normalize(e)
		}
		return out
	}
	return v
}
