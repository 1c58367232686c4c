package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	lua "github.com/Shopify/go-lua"

	"github.com/picloud/picloud/executor/internal/luajson"
)

const (
	contentTypeText = "text/plain; charset=utf-8"
	contentTypeJSON = "application/json"
)

// convertResult turns the value handle returned (at idx) into Result.Value
// and the HTTP response, following the rules in the package documentation.
func (s *state) convertResult(idx, arrayMeta int) (json.RawMessage, Response, error) {
	l := s.l
	opts := luajson.EncodeOptions{ArrayMeta: arrayMeta, MaxBytes: maxValueBytes, Tick: s.cur.tick}
	value, err := luajson.Encode(l, idx, opts)
	if err != nil {
		if errors.Is(err, errStopped) {
			return nil, Response{}, err
		}
		return nil, Response{}, fmt.Errorf("handle returned a value that cannot be converted to JSON: %w", err)
	}
	var resp Response
	switch l.TypeOf(idx) {
	case lua.TypeNil, lua.TypeNone:
		resp = Response{Status: 204, Headers: map[string]string{}}
	case lua.TypeString:
		str, _ := l.ToString(idx)
		resp = Response{Status: 200, Headers: map[string]string{"Content-Type": contentTypeText}, Body: []byte(str)}
	case lua.TypeTable:
		if s.isResponseTable(l, idx) {
			if resp, err = s.responseFromTable(l, idx, opts); err != nil {
				return nil, Response{}, err
			}
			break
		}
		fallthrough
	default:
		resp = Response{Status: 200, Headers: map[string]string{"Content-Type": contentTypeJSON}, Body: value}
	}
	if len(resp.Body) > maxBodyBytes {
		return nil, Response{}, fmt.Errorf("response body is %d bytes; the limit is %d", len(resp.Body), maxBodyBytes)
	}
	return value, resp, nil
}

// isResponseTable reports whether the table at idx has only the keys status,
// headers and body (at least one) with values of the right types. Tables
// that merely share a key name, like {status = "ok"}, are data and are
// returned as JSON.
func (s *state) isResponseTable(l *lua.State, idx int) bool {
	count := 0
	l.PushNil()
	for l.Next(idx) {
		l.Pop(1)
		count++
		if l.TypeOf(-1) != lua.TypeString { // check first: ToString would convert a number key in place
			l.Pop(1)
			return false
		}
		if k, _ := l.ToString(-1); k != "status" && k != "headers" && k != "body" {
			l.Pop(1)
			return false
		}
	}
	if count == 0 {
		return false
	}
	defer l.SetTop(l.Top())
	// Any number, or a string Lua reads as one, makes the table a response
	// by its status; responseFromTable then refuses a status out of range
	// instead of sending the table as data. A status that is not a number
	// ({status = "ok"}) is data.
	if rawField(l, idx, "status") != lua.TypeNil {
		if _, ok := l.ToNumber(-1); !ok {
			return false
		}
	}
	switch rawField(l, idx, "headers") {
	case lua.TypeNil:
	case lua.TypeTable:
		h := l.Top()
		l.PushNil()
		for i := 0; l.Next(h); i++ {
			s.walkStep(i)
			if l.TypeOf(-1) != lua.TypeString || l.TypeOf(-2) != lua.TypeString {
				return false
			}
			l.Pop(1)
		}
	default:
		return false
	}
	switch rawField(l, idx, "body") {
	case lua.TypeNil, lua.TypeString, lua.TypeTable:
		return true
	}
	return false
}

// rawField pushes t[key] without metamethods and returns its type.
func rawField(l *lua.State, idx int, key string) lua.Type {
	l.PushString(key)
	l.RawGet(idx)
	return l.TypeOf(-1)
}

func (s *state) responseFromTable(l *lua.State, idx int, opts luajson.EncodeOptions) (Response, error) {
	defer l.SetTop(l.Top())
	resp := Response{Status: 200, Headers: map[string]string{}}
	if rawField(l, idx, "status") != lua.TypeNil {
		status, err := responseStatus(l)
		if err != nil {
			return Response{}, err
		}
		resp.Status = status
	}
	hasType := false
	if rawField(l, idx, "headers") == lua.TypeTable {
		h := l.Top()
		l.PushNil()
		for i := 0; l.Next(h); i++ {
			s.walkStep(i)
			k, _ := l.ToString(-2)
			v, _ := l.ToString(-1)
			l.Pop(1)
			if !validHeaderName(k) {
				return Response{}, fmt.Errorf("response header name %q is not a valid HTTP token", k)
			}
			if !validHeaderValue(v) {
				return Response{}, fmt.Errorf("response header %q has a value with control characters", k)
			}
			resp.Headers[k] = v
			hasType = hasType || strings.EqualFold(k, "Content-Type")
		}
	}
	switch rawField(l, idx, "body") {
	case lua.TypeString:
		str, _ := l.ToString(-1)
		resp.Body = []byte(str)
		if !hasType {
			resp.Headers["Content-Type"] = contentTypeText
		}
	case lua.TypeTable:
		body, err := luajson.Encode(l, l.Top(), opts)
		if err != nil {
			if errors.Is(err, errStopped) {
				return Response{}, err
			}
			return Response{}, fmt.Errorf("response body cannot be converted to JSON: %w", err)
		}
		resp.Body = body
		if !hasType {
			resp.Headers["Content-Type"] = contentTypeJSON
		}
	}
	return resp, nil
}

// responseStatus reads the status on top of the stack: an integer from 200
// to 599, given as a number or a string Lua reads as one ("404"). An
// informational status (1xx) is no final answer: net/http sends it as an
// interim response and the client would wait for one that never comes (101
// even tells a proxy to turn the connection into a tunnel).
func responseStatus(l *lua.State) (int, error) {
	f, ok := l.ToNumber(-1)
	if !ok || f != math.Trunc(f) || f < 200 || f > 599 {
		shown := ""
		if l.TypeOf(-1) == lua.TypeString {
			str, _ := l.ToString(-1)
			if len(str) > 20 { // "0000…0101" reads as a number of any length
				str = str[:20] + "..."
			}
			shown = strconv.Quote(str)
		} else {
			shown = strconv.FormatFloat(f, 'g', -1, 64)
		}
		return 0, fmt.Errorf("response status %s is not an HTTP status a function may answer: use an integer from 200 to 599", shown)
	}
	return int(f), nil
}

// validHeaderName checks the RFC 9110 token syntax, so that a script cannot
// produce a header the HTTP layer would reject or mangle.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue rejects CR, LF, NUL and other control characters except
// tab: the ones that would allow response splitting or be refused by
// net/http.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
