package executor

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	lua "github.com/Shopify/go-lua"
)

// The uuid library: random (v4) and time-ordered (v7) UUIDs.

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
