package executor

import (
	"context"
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"testing"
	"time"
)

func TestHelperLibraries(t *testing.T) {
	runLuaCases(t, []luaCase{
		// base64: the RFC 4648 §10 vectors, both ways.
		{expr: `base64.encode(""), base64.encode("f"), base64.encode("fo"), base64.encode("foo")`, want: `"","Zg==","Zm8=","Zm9v"`},
		{expr: `base64.encode("foob"), base64.encode("fooba"), base64.encode("foobar")`, want: `"Zm9vYg==","Zm9vYmE=","Zm9vYmFy"`},
		{expr: `base64.decode(""), base64.decode("Zg=="), base64.decode("Zm8="), base64.decode("Zm9v")`, want: `"","f","fo","foo"`},
		{expr: `base64.decode("Zm9vYg=="), base64.decode("Zm9vYmE="), base64.decode("Zm9vYmFy")`, want: `"foob","fooba","foobar"`},
		{expr: `base64.decode(base64.encode("\0\1\255binary")) == "\0\1\255binary"`, want: `true`},
		{expr: `base64.encode("\255\254\253"), base64.urlencode("\255\254\253"), base64.urlencode("f")`, want: `"//79","__79","Zg"`},
		{expr: `base64.urldecode("__79") == "\255\254\253", base64.urldecode("Zg"), base64.urldecode("Zg==")`, want: `true,"f","f"`},
		{expr: `base64.decode("Zm9v!")`, err: "base64.decode: invalid input (illegal base64 data at input byte 4)"},
		{expr: `base64.decode("Zg")`, err: "base64.decode: invalid input"}, // std encoding wants padding
		{expr: `base64.urldecode("a+b/")`, err: "base64.urldecode: invalid input"},
		{expr: `base64.encode()`, err: "bad argument #1"},

		// hex.
		{expr: `hex.encode("\0\255abc"), hex.encode("")`, want: `"00ff616263",""`},
		{expr: `hex.decode("00FF616263") == "\0\255abc", hex.decode("6869")`, want: `true,"hi"`},
		{expr: `hex.decode("abc")`, err: "hex.decode: invalid input (odd length hex string)"},
		{expr: `hex.decode("zz")`, err: "hex.decode: invalid input (invalid byte: U+007A 'z')"},

		// crypto: FIPS 180 and RFC 1321 vectors, RFC 4231 test case 2.
		{expr: `crypto.sha256("")`, want: `"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"`},
		{expr: `crypto.sha256("abc")`, want: `"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"`},
		{expr: `crypto.sha1("abc")`, want: `"a9993e364706816aba3e25717850c26c9cd0d89d"`},
		{expr: `crypto.md5(""), crypto.md5("abc")`, want: `"d41d8cd98f00b204e9800998ecf8427e","900150983cd24fb0d6963f7d28e17f72"`},
		{expr: `crypto.hmac_sha256("Jefe", "what do ya want for nothing?")`, want: `"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"`},
		// RFC 4231 test case 1: a binary key.
		{expr: `crypto.hmac_sha256(hex.decode(("0b"):rep(20)), "Hi There")`, want: `"b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"`},
		{expr: `#crypto.random_bytes(16), crypto.random_bytes(0), #crypto.random_bytes(2^20)`, want: `16,"",1048576`},
		{expr: `crypto.random_bytes(32) ~= crypto.random_bytes(32)`, want: `true`},
		{expr: `crypto.random_bytes(2^20 + 1)`, err: "bad argument #1"},
		{expr: `crypto.random_bytes(-1)`, err: "an integer from 0 to 1048576 expected"},
		{expr: `crypto.random_bytes(1.5)`, err: "an integer from 0 to 1048576 expected"},
		{expr: `crypto.hmac_sha256("k")`, err: "bad argument #2"},

		// uuid: shape checked here, bits in TestUUIDBits.
		{expr: `uuid.v4():match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil`, want: `true`},
		{expr: `uuid.v7():match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-7%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil`, want: `true`},
		{expr: `uuid.v4() ~= uuid.v4()`, want: `true`},
		{expr: `(function() local prev = uuid.v7() for i = 1, 1000 do local u = uuid.v7() if u <= prev then return prev .. " " .. u end prev = u end return "ordered" end)()`, want: `"ordered"`},

		// time.
		{expr: `time.format(1234567890), time.format(0), time.format(-1)`, want: `"2009-02-13T23:31:30Z","1970-01-01T00:00:00Z","1969-12-31T23:59:59Z"`},
		{expr: `time.format(1234567890.5), time.format(1234567890.0004), time.format(1234567890.9996)`, want: `"2009-02-13T23:31:30.500Z","2009-02-13T23:31:30Z","2009-02-13T23:31:31Z"`},
		{expr: `time.format(1234567890, "%Y-%m-%d %H:%M:%S"), time.format(0, "!%A %j")`, want: `"2009-02-13 23:31:30","Thursday 001"`},
		{expr: `time.format(253402300799), time.format(-62135596800)`, want: `"9999-12-31T23:59:59Z","0001-01-01T00:00:00Z"`},
		{expr: `time.format(253402300800)`, err: "time out of range"},
		{expr: `time.format(0/0)`, err: "time out of range"},
		{expr: `time.format(0, "%Q")`, err: "bad argument #2"},
		{expr: `time.format(0, ("%c"):rep(2^20))`, err: "resulting string too large"},
		{expr: `time.parse("2009-02-13T23:31:30Z"), time.parse("2009-02-14T01:31:30+02:00"), time.parse("2009-02-13T23:31:30.25Z")`, want: `1234567890,1234567890,1234567890.25`},
		{expr: `time.parse(time.format(1700000000.123))`, want: `1700000000.123`},
		{expr: `time.parse("2009-02-13")`, err: `time.parse: not an RFC 3339 time: "2009-02-13"`},
		{expr: `time.parse("2009-02-30T00:00:00Z")`, err: "time.parse: not an RFC 3339 time"},
		{expr: `time.parse("")`, err: "time.parse: not an RFC 3339 time"},
		// A long argument is not echoed: a cut copy of a secret would
		// escape the worker's redaction.
		{expr: `time.parse(("s3cr3t"):rep(20))`, err: `time.parse: not an RFC 3339 time: a string of 120 bytes`},

		// The helper tables are read-only overlays like the other libraries.
		{expr: `(function() hex.encode = nil return type(hex.encode) end)()`, want: `"function"`},
		{expr: `getmetatable(crypto)`, want: `false`},
	})
}

func TestTimeNow(t *testing.T) {
	p := newTestPool(t, 1)
	before := time.Now()
	res := runSource(t, p, `function handle() return time.now() end`)
	var got float64
	if err := json.Unmarshal(res.Value, &got); err != nil {
		t.Fatalf("%s %s: %v", res.Value, res.Error, err)
	}
	if d := got - float64(before.UnixMilli())/1000; d < 0 || d > 5 {
		t.Errorf("time.now() = %v, %v from Go's clock", got, d)
	}
	if ms := got * 1000; math.Abs(ms-math.Round(ms)) > 0.01 {
		t.Errorf("time.now() = %v: not whole milliseconds", got)
	}
}

func TestUUIDBits(t *testing.T) {
	shape := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	now := time.Now()
	u7 := newUUIDv7(now)
	for _, u := range [][16]byte{u7} {
		s := formatUUID(u)
		if !shape.MatchString(s) {
			t.Fatalf("%s: not canonical", s)
		}
		if u[6]>>4 != 7 || u[8]>>6 != 2 {
			t.Errorf("%s: version %d variant %b", s, u[6]>>4, u[8]>>6)
		}
	}
	// The first 48 bits are the Unix time in milliseconds.
	ms, _ := strconv.ParseInt(formatUUID(u7)[0:8]+formatUUID(u7)[9:13], 16, 64)
	if d := ms - now.UnixMilli(); d < 0 || d > 1000 {
		t.Errorf("v7 timestamp %d, clock %d", ms, now.UnixMilli())
	}
	// Strictly increasing even for the same instant.
	a, b := newUUIDv7(now), newUUIDv7(now)
	if formatUUID(a) >= formatUUID(b) {
		t.Errorf("not ordered: %s %s", formatUUID(a), formatUUID(b))
	}

	p := newTestPool(t, 1)
	res := runSource(t, p, `function handle() return uuid.v4() end`)
	var s string
	if err := json.Unmarshal(res.Value, &s); err != nil || !shape.MatchString(s) || s[14] != '4' || !regexp.MustCompile(`^[89ab]$`).MatchString(s[19:20]) {
		t.Errorf("v4 %q (%v)", s, err)
	}
}

// TestHelperBudget proves that large inputs are charged: hashing a 16 MiB
// string over and over ends on the instruction budget, not the wall clock.
func TestHelperBudget(t *testing.T) {
	p := newTestPool(t, 1)
	for _, expr := range []string{
		`crypto.sha256(s)`, `base64.encode(s:sub(1, 2^23))`, `hex.decode(hex.encode(s:sub(1, 2^22)))`,
		`string.find(s, "y", 1, true)`, `string.find(s, "b%a")`,
	} {
		t.Run(expr, func(t *testing.T) {
			src := `function handle() local s = ("a"):rep(2^24 - 1) while true do local x = ` + expr + ` end end`
			res := runSourceLimits(t, p, src, Limits{Timeout: 60 * time.Second, Instructions: 20_000_000})
			if res.Status != TimedOut || res.Error != "t: instruction budget exhausted (20000000 VM instructions)" {
				t.Fatalf("got %s %q", res.Status, res.Error)
			}
		})
	}
	res := runSource(t, p, `function handle() return pcall(base64.encode, ("a"):rep(2^24 - 1)) end`)
	if string(res.Value) != "false" {
		t.Errorf("base64 of 16 MiB: %s %s", res.Value, res.Error)
	}
}

func runSourceLimits(t testing.TB, p *Pool, src string, limits Limits) Result {
	t.Helper()
	return p.Run(context.Background(), Function{Name: "t", Version: 1, Source: src}, Request{Method: "GET"}, limits)
}
