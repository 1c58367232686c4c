package keys

import (
	"bytes"
	"encoding/base64"
	"strings"
)

// randomBytes is the randomness of a key: 200 bits.
const randomBytes = 25

// bodyLen is the length of a key after its prefix: randomBytes in
// unpadded base32.
const bodyLen = randomBytes * 8 / 5

// Mask replaces a PiCloud API key found in an HTTP request where the
// platform does not expect one (a query parameter, a cookie, the path, the
// body, any header but the standard Authorization: Bearer, which is
// removed): the row and the script see the mask, never the key.
const Mask = "[api key]"

// isKeyChar reports whether c is in a key's base32 alphabet. Upper case
// counts too: a key someone upper-cased is still one lower-casing away.
func isKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '2' && c <= '7'
}

// find returns where the first key in s at or after from starts and
// ends, or -1. A key is Prefix (in any case) followed by at least
// bodyLen characters of its alphabet; the whole run is taken, so that
// a key with characters glued to its end is not left half visible.
func find[T string | []byte](s T, from int) (start, end int) {
	for i := from; i < len(s); {
		u := indexByte(s[i:], '_')
		if u < 0 {
			return -1, -1
		}
		u += i
		i = u + 1
		if u < len(Prefix)-1 || !equalFoldPic(s[u-3], s[u-2], s[u-1]) {
			continue
		}
		end := u + 1
		for end < len(s) && isKeyChar(s[end]) {
			end++
		}
		if end-u-1 >= bodyLen {
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

// Redact replaces every PiCloud API key in s with Mask.
func Redact(s string) string {
	start, end := find(s, 0)
	if start < 0 {
		return s
	}
	var b strings.Builder
	last := 0
	for start >= 0 {
		b.WriteString(s[last:start])
		b.WriteString(Mask)
		last = end
		start, end = find(s, end)
	}
	b.WriteString(s[last:])
	return b.String()
}

// RedactHeader is Redact for a header value, which may also carry
// a key inside Basic credentials (curl -u :pic_...).
func RedactHeader(v string) string {
	v = Redact(v)
	scheme, token, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return v
	}
	token = strings.TrimSpace(token)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if creds, err := enc.DecodeString(token); err == nil {
			if start, _ := find(creds, 0); start >= 0 {
				return scheme + " " + Mask
			}
			break
		}
	}
	return v
}

// Contains reports whether b holds a PiCloud API key.
func Contains(b []byte) bool {
	start, _ := find(b, 0)
	return start >= 0
}
