package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strings"
	"time"

	lua "github.com/Shopify/go-lua"

	"github.com/picloud/picloud/executor/internal/luajson"
)

// openLibrary pushes the real (shared, never exposed directly) table of the
// named library.
func (s *state) openLibrary(name string) {
	l := s.l
	open := func(f lua.Function) {
		l.PushGoFunction(f)
		l.Call(0, 1)
	}
	switch name {
	case "string":
		open(lua.StringOpen)
		lua.SetFunctions(l, []lua.RegistryFunction{{Name: "rep", Function: s.stringRep}}, 0)
		for _, name := range []string{"byte", "len", "sub"} {
			l.Field(-1, name)
			f := l.ToGoFunction(-1)
			l.Pop(1)
			l.PushGoFunction(numberStringArg(f))
			l.SetField(-2, name)
		}
		lua.SetFunctions(l, s.stringFunctions(), 0)
	case "table":
		open(lua.TableOpen)
		lua.SetFunctions(l, []lua.RegistryFunction{{Name: "sort", Function: tableSort}}, 0)
		lua.SetFunctions(l, []lua.RegistryFunction{
			{Name: "concat", Function: s.tableConcat},
			{Name: "sort", Function: s.chargeTableWork(l, "sort", 1)},
			{Name: "insert", Function: s.chargeTableWork(l, "insert", 3)},
			{Name: "remove", Function: s.chargeTableWork(l, "remove", 2)},
		}, 0)
	case "math":
		open(lua.MathOpen)
		// go-lua defines math.huge as the largest finite float.
		l.PushNumber(math.Inf(1))
		l.SetField(-2, "huge")
		lua.SetFunctions(l, []lua.RegistryFunction{
			{Name: "random", Function: s.mathRandom},
			{Name: "randomseed", Function: s.mathRandomseed},
		}, 0)
	case "bit32":
		open(lua.Bit32Open)
	case "os":
		// Built from scratch: go-lua's os library reaches the host
		// (execute, exit, getenv, remove, rename, tmpname).
		l.NewTable()
		lua.SetFunctions(l, []lua.RegistryFunction{
			{Name: "clock", Function: s.osClock},
			{Name: "date", Function: s.osDate},
			{Name: "time", Function: osTime},
			{Name: "difftime", Function: osDifftime},
		}, 0)
	case "json":
		l.NewTable()
		lua.SetFunctions(l, []lua.RegistryFunction{
			{Name: "encode", Function: s.jsonEncode},
			{Name: "decode", Function: s.jsonDecode},
			{Name: "array", Function: jsonArray},
		}, 0)
	case "log":
		l.NewTable()
		for _, level := range []string{"debug", "info", "warn", "error"} {
			l.PushGoFunction(s.logFunc(level, true))
			l.SetField(-2, level)
		}
	case "base64":
		lua.NewLibrary(l, s.base64Functions())
	case "hex":
		lua.NewLibrary(l, s.hexFunctions())
	case "crypto":
		lua.NewLibrary(l, s.cryptoFunctions())
	case "uuid":
		lua.NewLibrary(l, uuidFunctions())
	case "time":
		lua.NewLibrary(l, s.timeFunctions())
	case "kv":
		lua.NewLibrary(l, s.kvFunctions())
	case "http":
		lua.NewLibrary(l, s.httpFunctions())
	case "picloud":
		lua.NewLibrary(l, s.picloudFunctions())
	default:
		panic("executor: unknown library " + name)
	}
}

// overlayPairs is the __pairs of a library overlay: it iterates the overlay's
// own fields, then the library's, without handing the library table itself
// to the script.
func overlayPairs(l *lua.State) int {
	l.PushValue(lua.UpValueIndex(2))
	l.PushValue(1)
	l.PushNil()
	return 3
}

func overlayNext(l *lua.State) int {
	lua.CheckType(l, 1, lua.TypeTable)
	l.SetTop(2)
	l.PushValue(lua.UpValueIndex(1)) // 3: the library
	inOverlay := l.IsNil(2)
	if !inOverlay {
		l.PushValue(2)
		l.RawGet(1)
		inOverlay = !l.IsNil(-1)
		l.Pop(1)
	}
	if inOverlay {
		l.PushValue(2)
		if l.Next(1) {
			return 2
		}
		l.PushNil()
	} else {
		l.PushValue(2)
	}
	for l.Next(3) {
		l.PushValue(-2)
		l.RawGet(1)
		shadowed := !l.IsNil(-1)
		l.Pop(1)
		if !shadowed {
			return 2
		}
		l.Pop(1)
	}
	l.PushNil()
	return 1
}

// luaError replaces go-lua's error, which fails with "bad argument #-1 to
// '?'" for non-string error values: those are raised with raiseValue, so
// pcall returns them unchanged.
func luaError(l *lua.State) int {
	level := lua.OptInteger(l, 2, 1)
	l.SetTop(1)
	switch t := l.TypeOf(1); t {
	case lua.TypeString:
	case lua.TypeNumber:
		if level <= 0 { // stays a number, as in Lua
			raiseValue(l, checkString(l, 1))
		}
		// With a position it becomes a string; in Lua's number format.
		l.PushString(checkString(l, 1))
		l.Replace(1)
	default:
		msg := describeErrorValue(l, 1)
		if level > 0 {
			lua.Where(l, level)
			where, _ := l.ToString(-1)
			l.Pop(1)
			msg = where + msg
		}
		raiseValue(l, msg)
	}
	if level > 0 {
		lua.Where(l, level)
		l.Insert(1)
		l.Concat(2)
	}
	l.Error()
	panic("unreachable")
}

// pcall replaces go-lua's so that limit aborts and Go runtime errors cannot
// be caught: abortIfStopped re-raises them after the protected call returns.
func (s *state) pcall(l *lua.State) int {
	lua.CheckAny(l, 1)
	l.PushNil()
	l.Insert(1) // room for the status
	err := l.ProtectedCall(l.Top()-2, lua.MultipleReturns, 0)
	s.abortIfStopped(err)
	return finishProtected(l, err == nil)
}

func finishProtected(l *lua.State, ok bool) int {
	if !l.CheckStack(1) {
		l.SetTop(0)
		l.PushBoolean(false)
		l.PushString("stack overflow")
		return 2
	}
	l.PushBoolean(ok)
	l.Replace(1)
	return l.Top()
}

// xpcall replaces go-lua's, whose message handler is whatever sits in
// absolute stack slot 1 (one call could re-run the whole script) and runs
// with hooks disabled. Here the handler is called after unwinding, as an
// ordinary protected call, so the instruction budget applies to it.
func (s *state) xpcall(l *lua.State) int {
	n := l.Top()
	lua.ArgumentCheck(l, n >= 2, 2, "value expected")
	lua.CheckStackWithMessage(l, n+2, "too many arguments")
	l.PushValue(1)
	for i := 3; i <= n; i++ {
		l.PushValue(i)
	}
	err := l.ProtectedCall(n-2, lua.MultipleReturns, 0)
	s.abortIfStopped(err)
	if err == nil {
		l.PushBoolean(true)
		l.Insert(n + 1)
		return l.Top() - n
	}
	// Stack: ..., error value. Call handler(error value).
	l.PushValue(2)
	l.Insert(-2)
	herr := l.ProtectedCall(1, 1, 0)
	s.abortIfStopped(herr)
	l.PushBoolean(false)
	l.Insert(-2)
	return 2
}

// logFunc returns print (level "info") or one of log.*: arguments are joined
// with tabs after tostring, as print does, and collected into the run's logs
// instead of reaching the process's stdout.
// logFunc is print (structured false), which joins its arguments, or one
// of log.*, which also takes a trailing table of structured fields:
// log.info("order placed", {order = 42}).
func (s *state) logFunc(level string, structured bool) lua.Function {
	return func(l *lua.State) int {
		r := s.cur
		if r == nil || r.logsFull {
			return 0
		}
		var fields json.RawMessage
		if structured && l.Top() > 1 && l.IsTable(l.Top()) {
			fields = s.encodeArg(l, l.Top(), "log fields")
			l.Pop(1)
		}
		room := maxLogBytes - r.logBytes - len(fields) + 1 // +1 so addLog notices the overflow
		var b []byte
		for i := 1; i <= l.Top(); i++ {
			str, ok := toStringMeta(l, i)
			if !ok {
				lua.Errorf(l, "%s", "'tostring' must return a string to 'print'")
			}
			l.Pop(1)
			if i > 1 && len(b) < room {
				b = append(b, '\t')
			}
			if len(b) < room {
				b = append(b, str[:min(len(str), room-len(b))]...)
			}
		}
		r.addLog(level, string(b), fields)
		return 0
	}
}

func (r *run) addLog(level, msg string, fields json.RawMessage) {
	if r.logsFull {
		return
	}
	room := maxLogBytes - r.logBytes - len(fields)
	// room < 0: the fields alone overflow (msg[:room] would panic).
	if len(r.logs) >= maxLogEntries || room < 0 || room == 0 && msg != "" {
		r.truncateLogs()
		return
	}
	cut := len(msg) > room
	if cut {
		msg = msg[:room]
	}
	// Logs are text for humans and end up in a database: keep them valid
	// UTF-8 without NUL bytes (PostgreSQL rejects both).
	msg = strings.ReplaceAll(strings.ToValidUTF8(msg, "\uFFFD"), "\x00", "\uFFFD")
	if fields != nil {
		// PostgreSQL's jsonb has no \u0000 either.
		fields = bytes.ReplaceAll(fields, []byte(`\u0000`), []byte(`\ufffd`))
	}
	r.logs = append(r.logs, LogEntry{Time: time.Now(), Level: level, Message: msg, Fields: fields})
	r.logBytes += len(msg) + len(fields)
	r.streamLog()
	if cut {
		r.truncateLogs()
	}
}

// streamLog hands the newest line to the host for live viewers. It is best
// effort: the line is in the result anyway, so a failed call is not the
// script's problem.
func (r *run) streamLog() {
	if !r.streamLogs {
		return
	}
	data, err := json.Marshal(LiveLog{Index: len(r.logs) - 1, LogEntry: r.logs[len(r.logs)-1]})
	if err != nil {
		return
	}
	ctx, cancel := context.WithDeadline(r.ctx, r.deadline)
	defer cancel()
	_, _ = r.host.Call(ctx, "log", data)
}

func (r *run) truncateLogs() {
	r.logsFull = true
	r.logs = append(r.logs, LogEntry{
		Time:    time.Now(),
		Level:   "warn",
		Message: fmt.Sprintf("log truncated: an invocation may log at most %d entries and %d bytes", maxLogEntries, maxLogBytes),
	})
	r.streamLog()
}

// stringRep bounds the result: go-lua's string.rep("x", 2^40) is a fatal,
// unrecoverable out-of-memory error that takes the whole process down. The
// bytes built are charged to the budget: up to 16 MiB per call for a few VM
// instructions would otherwise keep the hook from checking the clock for
// seconds in a loop.
func (st *state) stringRep(l *lua.State) int {
	s := checkString(l, 1)
	n := lua.CheckNumber(l, 2)
	sep := ""
	if !l.IsNoneOrNil(3) {
		sep = checkString(l, 3)
	}
	if !(n >= 1) || s == "" && sep == "" { // !(n >= 1) includes NaN, which int() turns negative
		l.PushString("")
		return 1
	}
	if n*float64(len(s)+len(sep)) > maxStringBuild {
		lua.Errorf(l, "%s", fmt.Sprintf("resulting string too large (limit %d bytes)", maxStringBuild))
	}
	count := int(n)
	size := count*len(s) + (count-1)*len(sep)
	st.chargeBytes(size)
	if sep == "" {
		l.PushString(strings.Repeat(s, count)) // copies by doubling: 9 times faster for 16 MiB of "x"
		return 1
	}
	var b strings.Builder
	b.Grow(size)
	for i := range count {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(s)
	}
	l.PushString(b.String())
	return 1
}

// tableConcat replaces go-lua's, which appends to an immutable string in a
// loop (quadratic: 30,000 short pieces took about 2 s, uninterruptible).
// The pieces and bytes are charged to the budget.
func (s *state) tableConcat(l *lua.State) int {
	lua.CheckType(l, 1, lua.TypeTable)
	sep := lua.OptString(l, 2, "")
	first := lua.OptInteger(l, 3, 1)
	var last int
	if l.IsNoneOrNil(4) {
		last = lua.LengthEx(l, 1)
	} else {
		last = lua.CheckInteger(l, 4)
	}
	var b []byte
	pieces := 0
	for i := first; i <= last; i++ {
		l.RawGetInt(1, i)
		if t := l.TypeOf(-1); t != lua.TypeString && t != lua.TypeNumber {
			lua.Errorf(l, "%s", fmt.Sprintf("invalid value (at index %d) in table for 'concat'", i))
		}
		pieces++
		str := checkString(l, -1)
		l.Pop(1)
		if i > first {
			b = append(b, sep...)
		}
		b = append(b, str...)
		if len(b) > maxStringBuild {
			lua.Errorf(l, "%s", fmt.Sprintf("resulting string too large (limit %d bytes)", maxStringBuild))
		}
		if i == last { // last may be math.MaxInt
			break
		}
	}
	s.chargeBytes(len(b) + pieces*bytesPerInstruction) // a piece costs about an instruction
	l.PushString(string(b))
	return 1
}

// chargeTableWork wraps go-lua's table function name (on the library table
// at the top of the stack) to charge its work before it starts: n*log2(n)
// instructions for sort (about one per comparison; sorting a million
// numbers is one uninterruptible call of about 1.3 s), and n for insert and
// remove when called with a position (they shift up to n elements). Without
// it a loop of such calls on a large table ran hundreds of them between two
// hook calls, seconds past the timeout. The charge applies from minArgs
// arguments on.
func (s *state) chargeTableWork(l *lua.State, name string, minArgs int) lua.Function {
	l.Field(-1, name)
	f := l.ToGoFunction(-1)
	l.Pop(1)
	return func(l *lua.State) int {
		if l.Top() >= minArgs && l.IsTable(1) {
			n := l.RawLength(1)
			if name == "sort" {
				n *= bits.Len(uint(n))
			}
			s.chargeBytes(n * bytesPerInstruction)
		}
		return f(l)
	}
}

// mathRandom uses the state's own generator: go-lua's uses the process-wide
// one, which math.randomseed would make predictable for every other tenant.
func (s *state) mathRandom(l *lua.State) int {
	r := s.rng.Float64()
	switch l.Top() {
	case 0:
		l.PushNumber(r)
	case 1:
		u := lua.CheckNumber(l, 1)
		lua.ArgumentCheck(l, 1 <= u, 1, "interval is empty")
		l.PushNumber(math.Floor(r*u) + 1)
	case 2:
		lo, hi := lua.CheckNumber(l, 1), lua.CheckNumber(l, 2)
		lua.ArgumentCheck(l, lo <= hi, 2, "interval is empty")
		l.PushNumber(math.Floor(r*(hi-lo+1)) + lo)
	default:
		lua.Errorf(l, "%s", "wrong number of arguments")
	}
	return 1
}

func (s *state) mathRandomseed(l *lua.State) int {
	seed := lua.CheckNumber(l, 1)
	s.pcg.Seed(uint64(int64(seed)), 0)
	return 0
}

// osClock reports seconds since the invocation started: go-lua's reports the
// CPU time of the whole process, which leaks other tenants' load.
func (s *state) osClock(l *lua.State) int {
	if r := s.cur; r != nil {
		l.PushNumber(time.Since(r.start).Seconds())
	} else {
		l.PushNumber(0)
	}
	return 1
}

func osDifftime(l *lua.State) int {
	l.PushNumber(lua.CheckNumber(l, 1) - lua.OptNumber(l, 2, 0))
	return 1
}

// pushArrayMeta pushes the current invocation's JSON array marker.
func pushArrayMeta(l *lua.State) int {
	l.Field(lua.RegistryIndex, registryKey)
	l.RawGetInt(-1, slotArrayMeta)
	l.Remove(-2)
	return l.Top()
}

func (s *state) jsonEncode(l *lua.State) int {
	lua.CheckAny(l, 1)
	l.SetTop(1)
	opts := luajson.EncodeOptions{ArrayMeta: pushArrayMeta(l), MaxBytes: maxValueBytes}
	if r := s.cur; r != nil {
		opts.Tick = r.tick
	}
	b, err := luajson.Encode(l, 1, opts)
	if err != nil {
		if errors.Is(err, errStopped) {
			panic(abortSignal{})
		}
		lua.Errorf(l, "%s", "json.encode: "+err.Error())
	}
	s.chargeBytes(len(b)) // Tick counts values, and one long string is one value
	l.PushString(string(b))
	return 1
}

func (s *state) jsonDecode(l *lua.State) int {
	text := lua.CheckString(l, 1)
	s.chargeBytes(len(text))
	l.SetTop(1)
	meta := pushArrayMeta(l)
	if err := luajson.Decode(l, text, luajson.DecodeOptions{ArrayMeta: meta}); err != nil {
		lua.Errorf(l, "%s", "json.decode: "+err.Error())
	}
	return 1
}

// jsonArray marks a table (a new one if none is given) so that json.encode
// writes it as an array even when it is empty.
func jsonArray(l *lua.State) int {
	if l.IsNoneOrNil(1) {
		l.SetTop(0)
		l.NewTable()
	} else {
		lua.CheckType(l, 1, lua.TypeTable)
		l.SetTop(1)
		if lua.MetaField(l, 1, "__metatable") {
			lua.Errorf(l, "%s", "json.array: cannot change a protected metatable")
		}
	}
	pushArrayMeta(l)
	l.SetMetaTable(1)
	return 1
}
