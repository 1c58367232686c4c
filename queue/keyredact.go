package queue

import (
	"bytes"
	"encoding/base64"
	"maps"
	"slices"
	"strings"
)

// keyRandomBytes is the randomness of a key: 200 bits.
const keyRandomBytes = 25

// keyBodyLen is the length of a key after its prefix: keyRandomBytes in
// unpadded base32.
const keyBodyLen = keyRandomBytes * 8 / 5

// KeyMask replaces a PiCloud API key found in an HTTP request where the
// platform does not expect one (a query parameter, a cookie, the path, the
// body, any header but the standard Authorization: Bearer, which is
// removed): the row and the script see the mask, never the key.
const KeyMask = "[api key]"

// isKeyChar reports whether c is in a key's base32 alphabet. Upper case
// counts too: a key someone upper-cased is still one lower-casing away.
func isKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '2' && c <= '7'
}

// findKey returns where the first key in s at or after from starts and
// ends, or -1. A key is KeyPrefix (in any case) followed by at least
// keyBodyLen characters of its alphabet; the whole run is taken, so that
// a key with characters glued to its end is not left half visible.
func findKey[T string | []byte](s T, from int) (start, end int) {
	for i := from; i < len(s); {
		u := indexByte(s[i:], '_')
		if u < 0 {
			return -1, -1
		}
		u += i
		i = u + 1
		if u < len(KeyPrefix)-1 || !equalFoldPic(s[u-3], s[u-2], s[u-1]) {
			continue
		}
		end := u + 1
		for end < len(s) && isKeyChar(s[end]) {
			end++
		}
		if end-u-1 >= keyBodyLen {
			return u - 3, end
		}
	}
	return -1, -1
}

func equalFoldPic(p, i, c byte) bool {
	return p|0x20 == 'p' && i|0x20 == 'i' && c|0x20 == 'c'
}

func indexByte[T string | []byte](s T, c byte) int {
	switch s := any(s).(type) {
	case string:
		return strings.IndexByte(s, c)
	case []byte:
		return bytes.IndexByte(s, c)
	}
	return -1
}

// RedactKeys replaces every PiCloud API key in s with KeyMask.
func RedactKeys(s string) string {
	start, end := findKey(s, 0)
	if start < 0 {
		return s
	}
	var b strings.Builder
	last := 0
	for start >= 0 {
		b.WriteString(s[last:start])
		b.WriteString(KeyMask)
		last = end
		start, end = findKey(s, end)
	}
	b.WriteString(s[last:])
	return b.String()
}

// redactKeyHeader is RedactKeys for a header value, which may also carry
// a key inside Basic credentials (curl -u :pic_...).
func redactKeyHeader(v string) string {
	v = RedactKeys(v)
	scheme, token, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return v
	}
	token = strings.TrimSpace(token)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if creds, err := enc.DecodeString(token); err == nil {
			if start, _ := findKey(creds, 0); start >= 0 {
				return scheme + " " + KeyMask
			}
			break
		}
	}
	return v
}

// redactKeys replaces every PiCloud API key in the request, wherever it is
// (method, path, query names and values, header names and values, cookies,
// body), with KeyMask: a caller who sent a key the wrong way must not have
// it stored in the invocation row, readable with an invoke key, nor shown
// to the script.
func (r *HTTPRequest) redactKeys() {
	r.Method = RedactKeys(r.Method)
	r.Path = RedactKeys(r.Path)
	r.Query = redactKeyMap(r.Query, RedactKeys)
	r.Headers = redactKeyMap(r.Headers, redactKeyHeader)
	if start, _ := findKey(r.Body, 0); start >= 0 {
		r.Body = []byte(RedactKeys(string(r.Body)))
	}
}

// redactKeyMap returns m with its names and values redacted; m itself when
// nothing in it is a key, which is nearly always.
func redactKeyMap(m map[string]string, value func(string) string) map[string]string {
	changed := false
	for k, v := range m {
		if RedactKeys(k) != k || value(v) != v {
			changed = true
			break
		}
	}
	if !changed {
		return m
	}
	out := make(map[string]string, len(m))
	// In order, so that two names merged below join the same way each time.
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		k = RedactKeys(k)
		if prev, ok := out[k]; ok {
			// Two names that differed only by a key: keep both values.
			out[k] = prev + ", " + value(v)
			continue
		}
		out[k] = value(v)
	}
	return out
}
