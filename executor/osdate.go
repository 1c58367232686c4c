package executor

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	lua "github.com/Shopify/go-lua"
)

// osDate implements os.date, which go-lua lacks. All times are UTC: the
// platform has no notion of a user's time zone, and the host's zone would
// make results depend on where the server runs. A leading "!" is accepted
// and changes nothing. Like time.format, it refuses formats whose result
// could pass maxStringBuild (a conversion writes at most about 12 times its
// own length) and charges that size to the budget before formatting.
func (s *state) osDate(l *lua.State) int {
	format := lua.OptString(l, 1, "%c")
	checkOutput(l, "os.date", len(format)*12)
	s.chargeBytes(len(format) * 12)
	t := time.Now()
	if !l.IsNoneOrNil(2) {
		t = time.Unix(int64(lua.CheckNumber(l, 2)), 0)
	}
	t = t.UTC()
	format = strings.TrimPrefix(format, "!")
	if format == "*t" {
		l.CreateTable(0, 9)
		for _, f := range []struct {
			k string
			v int
		}{
			{"year", t.Year()}, {"month", int(t.Month())}, {"day", t.Day()},
			{"hour", t.Hour()}, {"min", t.Minute()}, {"sec", t.Second()},
			{"wday", int(t.Weekday()) + 1}, {"yday", t.YearDay()},
		} {
			l.PushInteger(f.v)
			l.SetField(-2, f.k)
		}
		l.PushBoolean(false)
		l.SetField(-2, "isdst")
		return 1
	}
	out, err := strftime(format, t)
	if err != nil {
		lua.ArgumentError(l, 1, err.Error())
	}
	l.PushString(out)
	return 1
}

// strftime formats t with the C99 conversions in the "C" locale, plus %s
// (Unix seconds). An unknown conversion is an error, as in Lua 5.2.
func strftime(format string, t time.Time) (string, error) {
	var b []byte
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b = append(b, c)
			continue
		}
		if i++; i >= len(format) {
			return "", fmt.Errorf("invalid conversion specifier '%%' at end of format")
		}
		c = format[i]
		// %E and %O only select locale alternatives; the C locale has none.
		if (c == 'E' || c == 'O') && i+1 < len(format) {
			i++
			c = format[i]
		}
		var err error
		if b, err = appendConversion(b, c, t); err != nil {
			return "", err
		}
	}
	return string(b), nil
}

func pad2(b []byte, n int) []byte {
	if n < 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, int64(n), 10)
}

func appendConversion(b []byte, c byte, t time.Time) ([]byte, error) {
	switch c {
	case 'a':
		return append(b, t.Weekday().String()[:3]...), nil
	case 'A':
		return append(b, t.Weekday().String()...), nil
	case 'b', 'h':
		return append(b, t.Month().String()[:3]...), nil
	case 'B':
		return append(b, t.Month().String()...), nil
	case 'c':
		return append(b, t.Format("Mon Jan _2 15:04:05 2006")...), nil
	case 'C':
		return pad2(b, t.Year()/100), nil
	case 'd':
		return pad2(b, t.Day()), nil
	case 'D', 'x':
		return append(b, t.Format("01/02/06")...), nil
	case 'e':
		return append(b, t.Format("_2")...), nil
	case 'F':
		return append(b, t.Format("2006-01-02")...), nil
	case 'g':
		y, _ := t.ISOWeek()
		return pad2(b, y%100), nil
	case 'G':
		y, _ := t.ISOWeek()
		return strconv.AppendInt(b, int64(y), 10), nil
	case 'H':
		return pad2(b, t.Hour()), nil
	case 'I':
		h := t.Hour() % 12
		if h == 0 {
			h = 12
		}
		return pad2(b, h), nil
	case 'j':
		d := t.YearDay()
		if d < 100 {
			b = append(b, '0')
		}
		return pad2(b, d), nil
	case 'm':
		return pad2(b, int(t.Month())), nil
	case 'M':
		return pad2(b, t.Minute()), nil
	case 'n':
		return append(b, '\n'), nil
	case 'p':
		if t.Hour() < 12 {
			return append(b, "AM"...), nil
		}
		return append(b, "PM"...), nil
	case 'r':
		return append(b, t.Format("03:04:05 PM")...), nil
	case 'R':
		return append(b, t.Format("15:04")...), nil
	case 's':
		return strconv.AppendInt(b, t.Unix(), 10), nil
	case 'S':
		return pad2(b, t.Second()), nil
	case 't':
		return append(b, '\t'), nil
	case 'T', 'X':
		return append(b, t.Format("15:04:05")...), nil
	case 'u':
		wd := int(t.Weekday())
		if wd == 0 {
			wd = 7
		}
		return strconv.AppendInt(b, int64(wd), 10), nil
	case 'U': // week of the year, weeks starting on Sunday
		return pad2(b, (t.YearDay()-1+7-int(t.Weekday()))/7), nil
	case 'V':
		_, w := t.ISOWeek()
		return pad2(b, w), nil
	case 'w':
		return strconv.AppendInt(b, int64(t.Weekday()), 10), nil
	case 'W': // week of the year, weeks starting on Monday
		return pad2(b, (t.YearDay()-1+7-(int(t.Weekday())+6)%7)/7), nil
	case 'y':
		return pad2(b, t.Year()%100), nil
	case 'Y':
		return strconv.AppendInt(b, int64(t.Year()), 10), nil
	case 'z':
		return append(b, "+0000"...), nil
	case 'Z':
		return append(b, "UTC"...), nil
	case '%':
		return append(b, '%'), nil
	}
	return nil, fmt.Errorf("invalid conversion specifier '%%%c'", c)
}

// osTime implements os.time in UTC (go-lua uses the host's zone), so that
// os.time(os.date("*t", x)) == x.
func osTime(l *lua.State) int {
	if l.IsNoneOrNil(1) {
		l.PushNumber(float64(time.Now().Unix()))
		return 1
	}
	lua.CheckType(l, 1, lua.TypeTable)
	l.SetTop(1)
	field := func(key string, def int, required bool) int {
		// Pop before any error: a deferred Pop would run while the error
		// unwinds and remove the message, leaving the field's value as
		// the error object.
		l.Field(1, key)
		f, ok := l.ToNumber(-1)
		l.Pop(1)
		if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
			if required {
				lua.Errorf(l, "%s", fmt.Sprintf("field '%s' missing in date table", key))
			}
			return def
		}
		// Bound each field so time.Date's arithmetic cannot overflow.
		if math.Abs(f) > 1e9 {
			lua.Errorf(l, "%s", fmt.Sprintf("field '%s' is out-of-bound", key))
		}
		return int(f)
	}
	year := field("year", 0, true)
	month := field("month", 0, true)
	day := field("day", 0, true)
	hour := field("hour", 12, false)
	minute := field("min", 0, false)
	sec := field("sec", 0, false)
	l.PushNumber(float64(time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC).Unix()))
	return 1
}
