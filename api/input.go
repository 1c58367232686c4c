package api

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
)

// Every REST input ends up in a text or jsonb column (or is compared with
// one), and PostgreSQL refuses two things a JSON body, a query string or a
// header can carry: the NUL character (text cannot hold the byte, jsonb
// refuses the escape \u0000) and byte sequences that are not UTF-8. Left to
// the database, either is a 500 with an ERROR line in the log; checked here,
// it is a 422 naming the field.

// Times an input may carry, in Unix seconds: from 2000-01-01T00:00:00Z to
// just before 10000-01-01T00:00:00Z. PostgreSQL's timestamptz reaches
// 294276 AD and Go's JSON encoding stops at 9999, so a later time would be
// stored but could not be read back; before 2000 no time is meant.
const (
	minInputUnix = 946684800
	maxInputUnix = 253402300800 // exclusive
)

// maxInputProblems caps the details of one answer, so that a body with a
// million bad strings does not produce a million-line answer.
const maxInputProblems = 20

// register is huma.Register with the checks every REST input gets on top of
// its schema's (checkInput). Every operation goes through it; a test makes
// sure no file calls huma.Register directly.
func register[I, O any](a huma.API, op huma.Operation, handler func(context.Context, *I) (*O, error)) {
	huma.Register(a, op, func(ctx context.Context, in *I) (*O, error) {
		if err := checkInput(in); err != nil {
			return nil, err
		}
		return handler(ctx, in)
	})
}

// checkInput walks a huma input struct: its path, query and header
// parameters and its Body, down to the strings of a decoded JSON value. It
// returns a 422 naming every string PostgreSQL cannot store and every time
// outside [minInputUnix, maxInputUnix), or nil.
func checkInput(in any) error {
	var c inputChecker
	c.walkInput(in)
	if len(c.details) == 0 {
		return nil
	}
	// Again in key order, so that the same body always gets the same
	// answer; clean input, the common case, pays for one walk only.
	c = inputChecker{sorted: true}
	c.walkInput(in)
	details := make([]error, len(c.details))
	for i, d := range c.details {
		details[i] = d
	}
	// The same detail as huma's own validation: clients show the list of
	// errors, each naming its field, after it.
	return huma.Error422UnprocessableEntity("validation failed", details...)
}

// inputChecker collects the problems of one input.
type inputChecker struct {
	sorted  bool      // walk maps in key order
	path    []segment // where the walk is; a string only for a problem
	details []*huma.ErrorDetail
}

// segment is a step of a location: a name, or an index.
type segment struct {
	name    string
	index   int
	isIndex bool
}

func (c *inputChecker) walkInput(in any) {
	v := reflect.Indirect(reflect.ValueOf(in))
	if v.Kind() != reflect.Struct {
		return
	}
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		var at string
		switch {
		case f.Tag.Get("path") != "":
			at = "path." + f.Tag.Get("path")
		case f.Tag.Get("query") != "":
			at = "query." + f.Tag.Get("query")
		case f.Tag.Get("header") != "":
			at = "header." + f.Tag.Get("header")
		case f.Name == "Body":
			at = "body"
		default:
			continue
		}
		c.path = append(c.path[:0], segment{name: at})
		c.walk(v.Field(i))
	}
}

func (c *inputChecker) full() bool { return len(c.details) >= maxInputProblems }

func (c *inputChecker) add(message string) {
	if c.full() {
		return
	}
	var b strings.Builder
	for i, s := range c.path {
		switch {
		case s.isIndex:
			fmt.Fprintf(&b, "[%d]", s.index)
		case i > 0:
			b.WriteString("." + s.name)
		default:
			b.WriteString(s.name)
		}
	}
	c.details = append(c.details, &huma.ErrorDetail{Location: b.String(), Message: message})
}

func (c *inputChecker) walk(v reflect.Value) {
	if c.full() {
		return
	}
	switch v.Kind() {
	case reflect.Interface:
		if !v.IsNil() {
			// A decoded JSON value, without reflection: payloads are
			// the bulk of what is walked.
			c.walkJSON(v.Elem().Interface())
		}
	case reflect.Pointer:
		if !v.IsNil() {
			c.walk(v.Elem())
		}
	case reflect.String:
		if problem := textProblem(v.String()); problem != "" {
			c.add(problem)
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return // bytes: stored as bytea, or base64 in JSON
		}
		for i := range v.Len() {
			c.enter(segment{index: i, isIndex: true}, v.Index(i))
		}
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return
		}
		if !c.sorted {
			for it := v.MapRange(); it.Next(); {
				c.walkEntry(it.Key().String(), it.Value())
			}
			return
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			c.walkEntry(k.String(), v.MapIndex(k))
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			c.checkTime(v.Interface().(time.Time))
			return
		}
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			switch {
			case name == "-":
			case name == "" && f.Anonymous:
				c.walk(v.Field(i)) // embedded: its fields are the parent's
			case name == "":
				c.enter(segment{name: f.Name}, v.Field(i))
			default:
				c.enter(segment{name: name}, v.Field(i))
			}
		}
	}
}

// walkJSON walks a value encoding/json decoded into an any; anything else
// goes back to walk.
func (c *inputChecker) walkJSON(x any) {
	if c.full() {
		return
	}
	switch x := x.(type) {
	case nil, bool, float64, json.Number:
	case string:
		if problem := textProblem(x); problem != "" {
			c.add(problem)
		}
	case []any:
		for i, e := range x {
			c.path = append(c.path, segment{index: i, isIndex: true})
			c.walkJSON(e)
			c.path = c.path[:len(c.path)-1]
		}
	case map[string]any:
		if !c.sorted {
			for k, e := range x {
				c.walkJSONEntry(k, e)
			}
			return
		}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			c.walkJSONEntry(k, x[k])
		}
	default:
		c.walk(reflect.ValueOf(x))
	}
}

func (c *inputChecker) walkJSONEntry(key string, x any) {
	if problem := textProblem(key); problem != "" {
		c.add("has a key that " + problem)
		return
	}
	c.path = append(c.path, segment{name: key})
	c.walkJSON(x)
	c.path = c.path[:len(c.path)-1]
}

func (c *inputChecker) enter(s segment, v reflect.Value) {
	c.path = append(c.path, s)
	c.walk(v)
	c.path = c.path[:len(c.path)-1]
}

func (c *inputChecker) walkEntry(key string, v reflect.Value) {
	if problem := textProblem(key); problem != "" {
		// Named by the object: the key itself cannot be shown in a
		// location.
		c.add("has a key that " + problem)
		return
	}
	c.enter(segment{name: key}, v)
}

// checkTime refuses a time outside [minInputUnix, maxInputUnix). The zero
// time too: inputs take optional times as pointers, so a zero time was sent
// (0001-01-01T00:00:00Z), and it would otherwise read as "not set".
func (c *inputChecker) checkTime(t time.Time) {
	if sec := t.Unix(); sec < minInputUnix || sec >= maxInputUnix {
		c.add(fmt.Sprintf("must be between %s and %s",
			time.Unix(minInputUnix, 0).UTC().Format(time.RFC3339), time.Unix(maxInputUnix-1, 0).UTC().Format(time.RFC3339)))
	}
}

// textProblem says why PostgreSQL cannot store s, or returns "".
func textProblem(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		return `contains the NUL character (\u0000), which PostgreSQL cannot store`
	}
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	return ""
}
