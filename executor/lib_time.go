package executor

import (
	"fmt"
	"math"
	"strings"
	"time"

	lua "github.com/Shopify/go-lua"
)

// The time library: epoch time, formatting and parsing.

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
