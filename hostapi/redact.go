package hostapi

import (
	"bytes"
	"cmp"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/picloud/picloud/executor"
)

// minRedactedSecret is the shortest secret value that is redacted: shorter
// ones would blank out ordinary words.
const minRedactedSecret = 4

// SecretRedactor masks a function's secret values wherever an invocation's
// output is stored or streamed (logs and their fields, errors, results):
// invocation rows are readable with an invoke-scope key, which must not
// reveal a secret. A script rarely prints a secret as it is; it quotes it
// in an error (time.parse, a bad URL), encodes it to JSON or formats it with
// %q, so each secret is masked in those spellings too.
type SecretRedactor struct {
	// forms are the spellings to mask, longest first: at one position the
	// longest match wins, so a secret that contains another is masked
	// whole rather than leaving its remainder.
	forms []secretForm
	// replacer is built on first use: most outputs hold no secret. Live
	// log lines and the final result may be masked from two goroutines.
	replacer func() *strings.Replacer
}

type secretForm struct {
	text  string
	bytes []byte // text, for searching a body without copying it
	mask  string
}

// NewSecretRedactor returns nil when there is nothing to mask, which every
// method takes as "leave the text as it is".
func NewSecretRedactor(secrets map[string]string) *SecretRedactor {
	var forms []secretForm
	seen := make(map[string]bool)
	for name, value := range secrets {
		if len(value) < minRedactedSecret {
			continue
		}
		mask := "[secret " + name + "]"
		for _, form := range secretSpellings(value) {
			if !seen[form] {
				seen[form] = true
				forms = append(forms, secretForm{text: form, bytes: []byte(form), mask: mask})
			}
		}
	}
	if len(forms) == 0 {
		return nil
	}
	slices.SortFunc(forms, func(a, b secretForm) int {
		// Ties by text keep the order, and so the mask of two secrets
		// with the same value, the same from run to run.
		return cmp.Or(len(b.text)-len(a.text), strings.Compare(a.text, b.text), strings.Compare(a.mask, b.mask))
	})
	r := &SecretRedactor{forms: forms}
	r.replacer = sync.OnceValue(func() *strings.Replacer {
		pairs := make([]string, 0, 2*len(forms))
		for _, f := range forms {
			pairs = append(pairs, f.text, f.mask)
		}
		return strings.NewReplacer(pairs...)
	})
	return r
}

// maxRedactorCacheBytes bounds the secrets a RedactorCache holds (counted
// as their JSON); it starts over when full.
const maxRedactorCacheBytes = 4 << 20

// RedactorCache keeps the SecretRedactor of each set of secrets: building
// one (every spelling of every secret, sorted) cost about 10 µs per attempt
// of a function with an escapable secret, against a map lookup here.
// Secrets change rarely; a changed set is a new entry.
type RedactorCache struct {
	mu    sync.Mutex
	m     map[string]*SecretRedactor // by the secrets' JSON, as stored
	bytes int
}

// Get returns the redactor of the secrets encoded in data, decoded already
// into secrets.
func (c *RedactorCache) Get(data []byte, secrets map[string]string) *SecretRedactor {
	if len(secrets) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.m[string(data)]; ok {
		return r
	}
	r := NewSecretRedactor(secrets)
	if len(data) > maxRedactorCacheBytes {
		return r
	}
	if c.m == nil || c.bytes+len(data) > maxRedactorCacheBytes {
		c.m, c.bytes = make(map[string]*SecretRedactor), 0
	}
	c.m[string(data)] = r
	c.bytes += len(data)
	return r
}

// secretSpellings is the value as it appears in the text a script commonly
// builds from it: as it is, escaped inside a JSON string (json.encode, log
// fields, Go's encoder), quoted by Go's %q (the platform's own error texts)
// and %+q, quoted by Lua's %q, and URL-encoded. Each spelling is also taken
// once more JSON-escaped: a json.encode'd secret in a log field or a JSON
// result is escaped twice.
func secretSpellings(value string) []string {
	if !needsEscaping(value) {
		return []string{value} // the usual token: every spelling is the value
	}
	once := []string{
		value,
		string(appendJSONString(nil, value)),
		goJSONString(value),
		unquote(strconv.Quote(value)),
		unquote(strconv.QuoteToASCII(value)),
		luaQuote(value, false),
		luaQuote(value, true),
		url.QueryEscape(value),
		url.PathEscape(value),
	}
	out := once
	for _, s := range once {
		out = append(out, string(appendJSONString(nil, s)))
	}
	return out
}

// needsEscaping reports whether some spelling of secretSpellings differs
// from value: whether it has a byte outside [A-Za-z0-9._~-].
func needsEscaping(value string) bool {
	for i := 0; i < len(value); i++ {
		if !isUnreserved(value[i]) {
			return true
		}
	}
	return false
}

// isUnreserved reports whether c is one of URL's unreserved characters,
// which no quoting or escaping changes.
func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~'
}

func unquote(quoted string) string { return quoted[1 : len(quoted)-1] }

// appendJSONString appends the inside of a JSON string literal as the
// sandbox's json.encode writes it (executor/internal/luajson): ", \ and
// control characters escaped, U+2028 and U+2029 too, nothing else.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		case c < utf8.RuneSelf:
			b = append(b, c)
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == '\u2028' || r == '\u2029' {
				b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
			continue
		}
		i++
	}
	return b
}

// goJSONString is the inside of encoding/json's string literal, which
// also escapes <, > and & for HTML.
func goJSONString(s string) string {
	b, err := json.Marshal(s)
	if err != nil { // a string always encodes
		return s
	}
	return string(b[1 : len(b)-1])
}

// luaQuote is the inside of Lua 5.2's %q, which writes a control character
// as a decimal escape, padded to three digits when a digit follows: padLast
// says whether one follows the value.
func luaQuote(s string, padLast bool) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\' || c == '\n':
			b = append(b, '\\', c)
		case c < 0x20 || c == 0x7f:
			b = append(b, '\\')
			next := padLast
			if i+1 < len(s) {
				next = s[i+1] >= '0' && s[i+1] <= '9'
			}
			if next {
				b = append(b, '0'+c/100, '0'+c/10%10, '0'+c%10)
			} else {
				b = strconv.AppendUint(b, uint64(c), 10)
			}
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func (r *SecretRedactor) has(text string) bool {
	for _, f := range r.forms {
		if strings.Contains(text, f.text) {
			return true
		}
	}
	return false
}

func (r *SecretRedactor) hasBytes(data []byte) bool {
	for _, f := range r.forms {
		if bytes.Contains(data, f.bytes) {
			return true
		}
	}
	return false
}

func (r *SecretRedactor) replace(text string) string {
	return r.replacer().Replace(text)
}

// Text masks the secrets in a log line or an error.
func (r *SecretRedactor) Text(s string) string {
	if r == nil || !r.has(s) {
		return s
	}
	return r.replace(s)
}

// bytes masks the secrets in a response body, which may be binary: it is
// masked byte for byte, as text is.
func (r *SecretRedactor) bytes(data []byte) []byte {
	if r == nil || !r.hasBytes(data) {
		return data
	}
	return []byte(r.replace(string(data)))
}

// JSON masks the secrets in JSON (log fields, a result) and keeps it JSON:
// the strings, object keys and numbers are masked one by one, so that a
// mask never lands in the middle of the syntax. A number that held a
// secret becomes the masking string.
func (r *SecretRedactor) JSON(data json.RawMessage) json.RawMessage {
	if r == nil || len(data) == 0 || !r.hasBytes(data) {
		return data
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		// Not JSON after all: store it as a masked string rather than
		// let the secret through.
		out, _ := json.Marshal(r.Text(string(data)))
		return out
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // as the sandbox wrote it
	if err := enc.Encode(r.jsonValue(v)); err != nil {
		out, _ := json.Marshal(r.Text(string(data)))
		return out
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func (r *SecretRedactor) jsonValue(v any) any {
	switch v := v.(type) {
	case string:
		return r.Text(v)
	case json.Number:
		if masked := r.Text(string(v)); masked != string(v) {
			return masked
		}
		return v
	case []any:
		for i := range v {
			v[i] = r.jsonValue(v[i])
		}
		return v
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[r.Text(k)] = r.jsonValue(e)
		}
		return out
	}
	return v
}

// Result masks what the invocation row stores of a run: its error, its log
// lines and their fields, and its result (for an HTTP trigger the response
// the caller gets too, which is the same value).
func (r *SecretRedactor) Result(res *executor.Result, httpTrigger bool) {
	if r == nil {
		return
	}
	res.Error = r.Text(res.Error)
	for i := range res.Logs {
		res.Logs[i].Message = r.Text(res.Logs[i].Message)
		res.Logs[i].Fields = r.JSON(res.Logs[i].Fields)
	}
	if httpTrigger {
		res.Response.Body = r.bytes(res.Response.Body)
		if len(res.Response.Headers) > 0 {
			headers := make(map[string]string, len(res.Response.Headers))
			for k, v := range res.Response.Headers {
				headers[r.Text(k)] = r.Text(v)
			}
			res.Response.Headers = headers
		}
	} else {
		res.Value = r.JSON(res.Value)
	}
}
