package executor

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"strings"
	"sync"
	"time"

	lua "github.com/Shopify/go-lua"
)

// bytesPerInstruction converts bytes processed by a Go helper (hashing,
// encoding) into the instruction budget: such loops run at a few
// nanoseconds per byte, a VM instruction costs 7 to 90, so 16 bytes per
// instruction charges a 16 MiB hash about a million instructions.
const bytesPerInstruction = 16

// maxRandomBytes bounds crypto.random_bytes.
const maxRandomBytes = 1 << 20

// chargeBytes counts n bytes of Go-side work against the budget. Small
// amounts are only added up (the next hook call checks them), so that
// short calls do not pay for a clock read; large ones are checked at once,
// before the work starts.
func (s *state) chargeBytes(n int) {
	cost := int64(n / bytesPerInstruction)
	if cost < hookInterval {
		if r := s.cur; r != nil && r.stop == "" {
			r.executed += cost
		}
		return
	}
	s.charge(cost)
}

// checkOutput fails the call before building a result above maxStringBuild.
func checkOutput(l *lua.State, name string, n int) {
	if n > maxStringBuild {
		lua.Errorf(l, "%s", fmt.Sprintf("%s: resulting string too large (limit %d bytes)", name, maxStringBuild))
	}
}

func (s *state) base64Functions() []lua.RegistryFunction {
	encode := func(name string, enc *base64.Encoding) lua.Function {
		return func(l *lua.State) int {
			src := checkString(l, 1)
			checkOutput(l, name, enc.EncodedLen(len(src)))
			s.chargeBytes(len(src))
			l.PushString(enc.EncodeToString([]byte(src)))
			return 1
		}
	}
	decode := func(name string, enc *base64.Encoding, trim bool) lua.Function {
		return func(l *lua.State) int {
			src := checkString(l, 1)
			if trim {
				// Accept padded input too: URL-safe data often arrives
				// from encoders that pad.
				src = strings.TrimRight(src, "=")
			}
			s.chargeBytes(len(src))
			b, err := enc.DecodeString(src)
			if err != nil {
				lua.Errorf(l, "%s", fmt.Sprintf("%s: invalid input (%v)", name, err))
			}
			l.PushString(string(b))
			return 1
		}
	}
	return []lua.RegistryFunction{
		{Name: "encode", Function: encode("base64.encode", base64.StdEncoding)},
		{Name: "decode", Function: decode("base64.decode", base64.StdEncoding, false)},
		{Name: "urlencode", Function: encode("base64.urlencode", base64.RawURLEncoding)},
		{Name: "urldecode", Function: decode("base64.urldecode", base64.RawURLEncoding, true)},
	}
}

func (s *state) hexFunctions() []lua.RegistryFunction {
	return []lua.RegistryFunction{
		{Name: "encode", Function: func(l *lua.State) int {
			src := checkString(l, 1)
			checkOutput(l, "hex.encode", hex.EncodedLen(len(src)))
			s.chargeBytes(len(src))
			l.PushString(hex.EncodeToString([]byte(src)))
			return 1
		}},
		{Name: "decode", Function: func(l *lua.State) int {
			src := checkString(l, 1)
			s.chargeBytes(len(src))
			b, err := hex.DecodeString(src)
			if err != nil {
				msg := strings.TrimPrefix(err.Error(), "encoding/hex: ")
				lua.Errorf(l, "%s", "hex.decode: invalid input ("+msg+")")
			}
			l.PushString(string(b))
			return 1
		}},
	}
}

func (s *state) cryptoFunctions() []lua.RegistryFunction {
	digest := func(h func() hash.Hash) lua.Function {
		return func(l *lua.State) int {
			src := checkString(l, 1)
			s.chargeBytes(len(src))
			d := h()
			d.Write([]byte(src))
			l.PushString(hex.EncodeToString(d.Sum(nil)))
			return 1
		}
	}
	return []lua.RegistryFunction{
		{Name: "sha256", Function: digest(sha256.New)},
		{Name: "sha1", Function: digest(sha1.New)},
		{Name: "md5", Function: digest(md5.New)},
		{Name: "hmac_sha256", Function: func(l *lua.State) int {
			key := checkString(l, 1)
			msg := checkString(l, 2)
			s.chargeBytes(len(key) + len(msg))
			mac := hmac.New(sha256.New, []byte(key))
			mac.Write([]byte(msg))
			l.PushString(hex.EncodeToString(mac.Sum(nil)))
			return 1
		}},
		{Name: "random_bytes", Function: func(l *lua.State) int {
			n := lua.CheckNumber(l, 1)
			lua.ArgumentCheck(l, n >= 0 && n <= maxRandomBytes && n == math.Trunc(n), 1,
				fmt.Sprintf("an integer from 0 to %d expected", maxRandomBytes))
			s.chargeBytes(int(n))
			b := make([]byte, int(n))
			_, _ = rand.Read(b) // never fails on supported platforms (Go 1.24+ crashes instead)
			l.PushString(string(b))
			return 1
		}},
	}
}

func uuidFunctions() []lua.RegistryFunction {
	return []lua.RegistryFunction{
		{Name: "v4", Function: func(l *lua.State) int {
			var u [16]byte
			_, _ = rand.Read(u[:])
			u[6] = u[6]&0x0f | 0x40
			u[8] = u[8]&0x3f | 0x80
			l.PushString(formatUUID(u))
			return 1
		}},
		{Name: "v7", Function: func(l *lua.State) int {
			l.PushString(formatUUID(newUUIDv7(time.Now())))
			return 1
		}},
	}
}

// uuidClock keeps version 7 UUIDs strictly increasing within the process,
// even for several in the same clock tick (RFC 9562 §6.2, method 3: the 12
// bits after the millisecond timestamp hold a finer fraction of it).
var uuidClock struct {
	sync.Mutex
	last int64 // Unix milliseconds << 12 | 1/4096ths of a millisecond
}

func newUUIDv7(now time.Time) [16]byte {
	ns := now.UnixNano()
	stamp := ns/1e6<<12 | ns%1e6*4096/1e6
	uuidClock.Lock()
	if stamp <= uuidClock.last {
		stamp = uuidClock.last + 1
	}
	uuidClock.last = stamp
	uuidClock.Unlock()

	var u [16]byte
	_, _ = rand.Read(u[8:])
	ms := stamp >> 12
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	u[6] = 0x70 | byte(stamp>>8)&0x0f
	u[7] = byte(stamp)
	u[8] = u[8]&0x3f | 0x80
	return u
}

func formatUUID(u [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// The range time.format accepts: years 1 to 9999, which RFC 3339 (four-digit
// years) can express.
const (
	minEpoch = -62135596800
	maxEpoch = 253402300799
)

func (s *state) timeFunctions() []lua.RegistryFunction {
	return []lua.RegistryFunction{
		{Name: "now", Function: func(l *lua.State) int {
			l.PushNumber(float64(time.Now().UnixMilli()) / 1000)
			return 1
		}},
		{Name: "format", Function: s.timeFormat},
		{Name: "parse", Function: timeParse},
	}
}

// timeFormat is time.format(epoch?, layout?): RFC 3339 in UTC with
// milliseconds when the time has a fraction, or a strftime layout as for
// os.date.
func (s *state) timeFormat(l *lua.State) int {
	t := time.Now()
	if !l.IsNoneOrNil(1) {
		epoch := lua.CheckNumber(l, 1)
		lua.ArgumentCheck(l, epoch >= minEpoch && epoch < maxEpoch+1, 1, "time out of range (years 1 to 9999)")
		sec := math.Floor(epoch)
		ms := math.Round((epoch - sec) * 1000)
		t = time.Unix(int64(sec), int64(ms)*1e6)
	}
	t = t.UTC()
	if l.IsNoneOrNil(2) {
		layout := "2006-01-02T15:04:05Z07:00"
		if t.Nanosecond() != 0 {
			layout = "2006-01-02T15:04:05.000Z07:00"
		}
		l.PushString(t.Format(layout))
		return 1
	}
	layout := lua.CheckString(l, 2)
	// A conversion writes at most about 12 times its own length (%c).
	checkOutput(l, "time.format", len(layout)*12)
	s.chargeBytes(len(layout) * 12)
	out, err := strftime(strings.TrimPrefix(layout, "!"), t)
	if err != nil {
		lua.ArgumentError(l, 2, err.Error())
	}
	l.PushString(out)
	return 1
}

// maxTimeText is longer than any RFC 3339 time (35 bytes with nanoseconds
// and an offset): a longer argument is not one.
const maxTimeText = 64

// timeParse is time.parse(s): an RFC 3339 time (any offset, optional
// fraction) to epoch seconds.
func timeParse(l *lua.State) int {
	src := lua.CheckString(l, 1)
	if len(src) > maxTimeText {
		// Not echoed: a cut copy of a secret passed here by mistake would
		// escape the worker's redaction, which masks whole secrets only.
		lua.Errorf(l, "%s", fmt.Sprintf("time.parse: not an RFC 3339 time: a string of %d bytes", len(src)))
	}
	t, err := time.Parse(time.RFC3339Nano, src)
	if err != nil {
		lua.Errorf(l, "%s", fmt.Sprintf("time.parse: not an RFC 3339 time: %q", src))
	}
	l.PushNumber(float64(t.Unix()) + float64(t.Nanosecond())/1e9)
	return 1
}
