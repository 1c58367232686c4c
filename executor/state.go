package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	lua "github.com/Shopify/go-lua"

	"github.com/picloud/picloud/executor/internal/luajson"
)

// registryKey names the registry table that holds this package's per-state
// Lua values. Scripts cannot reach the registry (no debug library).
const registryKey = "picloud.executor"

// Integer slots in the registry table.
const (
	slotBase      = 1 // frozen table of safe globals, the __index of every env
	slotEnvMeta   = 2 // metatable of per-invocation environments
	slotLibMetas  = 3 // array of metatables for the library overlays, see libNames
	slotChunks    = 4 // compiled chunks by chunkCache id
	slotArrayMeta = 5 // JSON array marker of the current invocation
	slotStrMeta   = 6 // the string metatable, see bindStringMethods
	slotStrLib    = 7 // the real string library, the string metatable's __index between runs
)

// hookInterval is how many VM instructions run between two limit checks.
// The notes measured the count hook at +3 % for 10,000 and +18 % for 100;
// 1000 keeps the overhead small while bounding how far a script can run
// past a limit (and the granularity of the instruction budget).
const hookInterval = 1000

// Limits on what one invocation can produce.
const (
	maxLogEntries  = 1000
	maxLogBytes    = 64 << 10
	maxBodyBytes   = 6 << 20  // largest Response.Body
	maxValueBytes  = 16 << 20 // largest Result.Value (a body may grow when JSON-escaped)
	maxStringBuild = 16 << 20 // largest string built by string.rep or table.concat
)

// abortSignal is what the hook panics with to stop a script. It deliberately
// does not implement error: go-lua's protected call only converts error
// values, so pcall and xpcall cannot swallow it.
type abortSignal struct{}

// state is one Lua state with its sandbox. It is used by one goroutine at a
// time; cur is set only while an invocation runs.
type state struct {
	l      *lua.State
	chunks *chunkCache
	pcg    *rand.PCG
	rng    *rand.Rand
	hook   lua.Hook
	logger *slog.Logger
	cur    *run
}

// run is the per-invocation bookkeeping the Go side of the libraries and the
// hook consult.
type run struct {
	ctx      context.Context
	start    time.Time
	deadline time.Time
	ctxLimit bool // deadline comes from ctx, not from Limits.Timeout
	timeout  time.Duration
	budget   int64
	executed int64
	interval int

	heapLimit  int64 // 0: not checked
	heapSample []metrics.Sample
	host       Host
	streamLogs bool

	walkWork int // see walkStep

	logs      []LogEntry
	logBytes  int
	logsFull  bool
	stop      Status // non-empty once the run must end; sticky
	stopMsg   string
	stopLimit Limit  // which limit stopped the run, if one did
	crashInfo string // for the operator log when stop is caused by a Go panic
}

func newState(cacheSize int, logger *slog.Logger) *state {
	l := lua.NewState()
	s := &state{
		l:      l,
		chunks: newChunkCache(cacheSize),
		pcg:    rand.NewPCG(rand.Uint64(), rand.Uint64()),
		logger: logger,
	}
	s.rng = rand.New(s.pcg)
	s.hook = s.onHook
	s.buildSandbox()
	return s
}

// baseNames are the functions of go-lua's base library that are kept as is.
// Left out: load, loadfile, dofile (host files, binary chunks), collectgarbage
// (stop-the-world GC, process heap size); require and unpack do not exist in
// the base library.
var baseNames = []string{
	"assert", "getmetatable", "ipairs", "next", "pairs", "rawequal", "rawget",
	"rawlen", "rawset", "select", "setmetatable", "type",
	"_VERSION",
}

// libNames are the library tables every environment gets, in slotLibMetas order.
var libNames = []string{"string", "table", "math", "bit32", "os", "json", "log",
	"base64", "hex", "crypto", "uuid", "time", "kv", "http", "picloud"}

func (s *state) buildSandbox() {
	l := s.l
	l.NewTable() // 1: registry table of this package
	const reg = 1

	// go-lua's base library writes into the real global table; take the
	// safe functions from there and then empty it, so nothing dangerous is
	// reachable even through a chunk that somehow kept the default _ENV.
	l.PushGoFunction(lua.BaseOpen)
	l.Call(0, 1) // 2: real globals
	l.NewTable() // 3: base
	for _, name := range baseNames {
		l.Field(2, name)
		l.SetField(3, name)
	}
	l.Field(2, "tonumber")
	tonumber := l.ToGoFunction(-1)
	l.Pop(1)
	for name, fn := range map[string]lua.Function{
		"tonumber": luaTonumber(tonumber),
		"error":    luaError,
		"pcall":    s.pcall,
		"xpcall":   s.xpcall,
		"print":    s.logFunc("info", false),
		"tostring": luaTostring,
	} {
		l.PushGoFunction(fn)
		l.SetField(3, name)
	}
	s.guardFunctions(3, "")
	clearTable(l, 2)
	l.Remove(2) // base is now 2
	l.RawSetInt(reg, slotBase)

	// Environments are fresh tables reading through to base; __metatable
	// hides base so a script cannot reach and modify it.
	l.NewTable()
	l.RawGetInt(reg, slotBase)
	l.SetField(-2, "__index")
	l.PushBoolean(false)
	l.SetField(-2, "__metatable")
	l.RawSetInt(reg, slotEnvMeta)

	l.NewTable() // 2: overlay metatables
	for i, name := range libNames {
		s.openLibrary(name) // pushes the real library table
		real := l.Top()
		s.guardFunctions(real, name+".")
		l.NewTable() // overlay metatable
		l.PushValue(real)
		l.SetField(-2, "__index")
		l.PushValue(real)
		l.PushValue(real)
		l.PushGoClosure(overlayNext, 1)
		l.PushGoClosure(overlayPairs, 2)
		l.SetField(-2, "__pairs")
		l.PushBoolean(false)
		l.SetField(-2, "__metatable")
		l.RawSetInt(2, i+1)
		l.Pop(1) // real library table
	}
	l.RawSetInt(reg, slotLibMetas)

	l.NewTable()
	l.RawSetInt(reg, slotChunks)

	// The string metatable is shared by every string in the state; without
	// __metatable, getmetatable("").__index could be changed and the change
	// would outlive the invocation.
	l.PushString("")
	if !l.MetaTable(-1) {
		panic("executor: go-lua's string library set no string metatable")
	}
	l.PushBoolean(false)
	l.SetField(-2, "__metatable")
	l.Field(-1, "__index")
	l.RawSetInt(reg, slotStrLib)
	l.RawSetInt(reg, slotStrMeta)
	l.Pop(1)

	l.SetField(lua.RegistryIndex, registryKey)
	l.SetTop(0)
}

// guardFunctions wraps every Go function in the table at idx with guard.
func (s *state) guardFunctions(idx int, prefix string) {
	l := s.l
	var names []string
	l.PushNil()
	for l.Next(idx) {
		if l.IsGoFunction(-1) && l.TypeOf(-2) == lua.TypeString {
			name, _ := l.ToString(-2)
			names = append(names, name)
		}
		l.Pop(1)
	}
	for _, name := range names {
		l.Field(idx, name)
		f := l.ToGoFunction(-1)
		l.Pop(1)
		l.PushGoFunction(s.guard(prefix+name, f))
		l.SetField(idx, name)
	}
}

// guard runs a Go function called from Lua and turns any Go panic other than
// a Lua error into a sticky abort of the run. Doing it here, at the source,
// keeps the original panic value and stack: go-lua's protected call would
// otherwise either hand a runtime error to pcall as an ordinary error or
// replace a non-error panic value with a type-assertion failure.
func (s *state) guard(name string, f lua.Function) lua.Function {
	renames := !raisesCallerMessage[name]
	return func(l *lua.State) int {
		var frame lua.Frame
		if renames {
			frame, _ = lua.Stack(l, 0)
		}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if re, ok := v.(lua.RuntimeError); ok {
				// Only an error raised by f itself: go-lua leaves its call
				// frames in place until a protected call recovers, so the
				// frame is another one when the error came from a function
				// f called (a sort comparator, a gsub callback).
				if now, ok := lua.Stack(l, 0); renames && ok && now == frame {
					v = nameArgumentError(l, re, frame, name)
				}
			} else if _, ok := v.(abortSignal); !ok {
				if err, ok := v.(error); !ok || !isLuaError(err) {
					if r := s.cur; r != nil {
						r.crash(fmt.Sprintf("%s: panic: %v", name, v), string(debug.Stack()))
					}
					v = abortSignal{}
				}
			}
			panic(v)
		}()
		return f(l)
	}
}

// raisesCallerMessage are the functions whose errors carry a message the
// script chose (error("bad argument #1 to '?' (x)") is raised as written).
var raisesCallerMessage = map[string]bool{"error": true, "assert": true}

// nameArgumentError names the library function in an argument error raised
// by go-lua's ArgumentError (and CheckString, CheckType, ArgumentCheck, ...),
// which takes the name from the instruction after the call instead of the
// call itself: "bad argument #1 to '?'", or after an unrelated neighbour,
// 'print' in print(string.rep()) or '__len' when a # follows the call, and
// "calling 'f' on bad self" with the argument count shifted when the
// neighbour is a method call. It cannot search the globals either (the real
// global table is empty), which Lua 5.2 does for pcall(string.rep). The
// message becomes "bad argument #N to 'string.rep' (...)", N counting every
// argument, self included, and name being where the function lives
// ("string.rep", "tonumber"), as Lua 5.2 names a function it cannot name
// from the call. go-lua's name is recomputed from the same frame, so only
// the message it built is matched; and only when it is the error value on
// top of the stack, so nothing else is touched.
func nameArgumentError(l *lua.State, re lua.RuntimeError, frame lua.Frame, name string) lua.RuntimeError {
	msg := string(re)
	if top, ok := l.ToValue(-1).(string); !ok || top != msg {
		return re
	}
	d, _ := lua.Info(l, "n", frame)
	goName := d.Name
	if goName == "" {
		goName = "?"
	}
	var where, rest string
	arg := 0
	if i := strings.Index(msg, "bad argument #"); i >= 0 {
		where, rest = msg[:i], msg[i+len("bad argument #"):]
		digits := 0
		for digits < len(rest) && rest[digits] >= '0' && rest[digits] <= '9' {
			digits++
		}
		n, err := strconv.Atoi(rest[:digits])
		if err != nil || !strings.HasPrefix(rest[digits:], " to '"+goName+"' (") {
			return re
		}
		arg, rest = n, rest[digits+len(" to '"+goName+"' ("):]
		if d.NameKind == "method" { // go-lua did not count self
			arg++
		}
	} else if i := strings.Index(msg, "calling '"+goName+"' on bad self ("); i >= 0 && d.NameKind == "method" {
		where, rest = msg[:i], msg[i+len("calling '"+goName+"' on bad self ("):]
		arg = 1
	} else {
		return re
	}
	msg = where + "bad argument #" + strconv.Itoa(arg) + " to '" + name + "' (" + rest
	l.Pop(1)
	l.PushString(msg)
	return lua.RuntimeError(msg)
}

func clearTable(l *lua.State, idx int) {
	var keys []string
	l.PushNil()
	for l.Next(idx) {
		l.Pop(1)
		if k, ok := l.ToString(-1); ok && l.TypeOf(-1) == lua.TypeString {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		l.PushNil()
		l.SetField(idx, k)
	}
}

// execute runs one invocation. healthy reports whether the state may be
// reused: false after an abort or a Go panic, whose unwinding leaves go-lua's
// internal bookkeeping (hook flag, call depth) in an unknown state.
func (s *state) execute(ctx context.Context, start time.Time, fn Function, req Request, limits Limits, heapLimit int64) (res Result, healthy bool) {
	r := newRun(ctx, start, limits)
	r.host = req.Host
	r.streamLogs = req.StreamLogs && req.Host != nil
	if heapLimit > 0 {
		r.heapLimit = heapLimit
		r.heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	}
	s.cur = r
	defer func() {
		if v := recover(); v != nil {
			if _, ok := v.(abortSignal); !ok && r.stop == "" {
				r.crash(fmt.Sprintf("panic: %v", v), string(debug.Stack()))
			}
			healthy = false
		}
		if r.stop != "" {
			healthy = false
			res = Result{Status: r.stop, Error: fn.Name + ": " + r.stopMsg, Limit: r.stopLimit}
			if r.stop == Failed && r.stopLimit == "" {
				s.logger.Error("executor: Go panic in the Lua runtime; state discarded",
					"function", fn.Name, "version", fn.Version, "error", r.stopMsg, "stack", r.crashInfo)
			}
		}
		s.cur = nil
		res.Logs = r.logs
		res.Duration = time.Since(start)
	}()
	res, healthy = s.invoke(r, fn, req)
	if healthy && stackSlots(s.l) > maxKeptStack {
		healthy = false
	}
	if healthy {
		s.release()
	}
	return res, healthy
}

// maxKeptStack is the Lua stack size, in slots, beyond which a state is
// discarded after its run, even a successful one. go-lua never shrinks its
// stack, nor frees the call frames of a deep recursion: a run that recursed
// 150,000 levels and returned (or unpacked a million values) left 20 to 26
// MiB to every later invocation on the state, which in a sandbox child is
// heap taken from the next tenant's limit. 64 Ki slots is 1 MiB; ordinary
// handlers stay far below it.
const maxKeptStack = 1 << 16

// stackField locates go-lua's unexported State.stack, which has no API;
// nil if a future go-lua renames it, which only disables the check (a test
// in this package fails then).
var stackField = func() []int {
	f, ok := reflect.TypeFor[lua.State]().FieldByName("stack")
	if !ok || f.Type.Kind() != reflect.Slice {
		return nil
	}
	return f.Index
}()

// stackSlots is the size of l's stack (0 if unknown).
func stackSlots(l *lua.State) int {
	if stackField == nil {
		return 0
	}
	return reflect.ValueOf(l).Elem().FieldByIndex(stackField).Len()
}

// release drops the invocation's values from the stack and from the cached
// chunk's _ENV upvalue, which would otherwise keep the last environment
// (and whatever the script stored in it) alive until the function runs again.
func (s *state) release() {
	l := s.l
	s.unbindStringMethods()
	if l.Top() >= idxChunk && l.IsFunction(idxChunk) {
		l.PushNil()
		if _, ok := lua.SetUpValue(l, idxChunk, 1); !ok {
			l.Pop(1)
		}
	}
	l.SetTop(0)
}

func newRun(ctx context.Context, start time.Time, limits Limits) *run {
	r := &run{ctx: ctx, start: start, timeout: limits.Timeout, budget: limits.Instructions}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	if r.budget <= 0 {
		r.budget = DefaultInstructions
	}
	r.deadline = start.Add(r.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(r.deadline) {
		r.deadline, r.ctxLimit = d, true
	}
	r.interval = int(min(int64(hookInterval), r.budget))
	return r
}

// check applies the limits and records the first one exceeded. It reports
// whether the run must stop.
func (r *run) check() bool {
	if r.stop != "" {
		return true
	}
	if r.executed >= r.budget {
		r.stop, r.stopMsg, r.stopLimit = TimedOut, fmt.Sprintf("instruction budget exhausted (%d VM instructions)", r.budget), LimitInstructions
		return true
	}
	select {
	case <-r.ctx.Done():
		if errors.Is(r.ctx.Err(), context.DeadlineExceeded) {
			r.stop, r.stopMsg, r.stopLimit = TimedOut, "timed out: "+context.Cause(r.ctx).Error(), LimitTimeout
		} else {
			r.stop, r.stopMsg = Cancelled, "cancelled: "+context.Cause(r.ctx).Error()
		}
		return true
	default:
	}
	if r.heapLimit > 0 && r.heapBytes() > uint64(r.heapLimit) {
		// Garbage counts until collected: collect before deciding. This
		// runs only near the limit, and only in a sandbox child, where
		// the whole heap is this invocation's.
		runtime.GC()
		if r.heapBytes() > uint64(r.heapLimit) {
			r.stop, r.stopMsg, r.stopLimit = Failed, fmt.Sprintf("memory limit exceeded (%d MiB)", r.heapLimit>>20), LimitMemory
			return true
		}
	}
	if !time.Now().Before(r.deadline) {
		if r.ctxLimit {
			r.stop, r.stopMsg = TimedOut, "timed out: context deadline exceeded"
		} else {
			r.stop, r.stopMsg = TimedOut, fmt.Sprintf("timed out after %v", r.timeout)
		}
		r.stopLimit = LimitTimeout
		return true
	}
	return false
}

func (r *run) crash(msg, detail string) {
	if r.stop == "" {
		r.stop, r.stopMsg, r.crashInfo = Failed, "internal error in the Lua runtime: "+msg, detail
	}
}

// heapBytes is the Go heap's size in objects, read without stopping the
// world (runtime/metrics, unlike runtime.ReadMemStats).
func (r *run) heapBytes() uint64 {
	metrics.Read(r.heapSample)
	return r.heapSample[0].Value.Uint64()
}

// errStopped is returned by run.tick to conversions that run in Go.
var errStopped = errors.New("run stopped")

func (r *run) tick() error {
	if r.check() {
		return errStopped
	}
	return nil
}

// charge counts n instructions' worth of work that a library function does
// in Go on the script's behalf (pattern matching, building large strings)
// against the budget, and aborts the run once a limit is hit. Long Go loops
// call it every few thousand steps, so that the VM's count hook, which
// cannot fire inside them, is not the only check.
func (s *state) charge(n int64) {
	r := s.cur
	if r == nil {
		return
	}
	if r.stop == "" {
		r.executed += n
		r.check()
	}
	if r.stop != "" {
		panic(abortSignal{})
	}
}

// bytesPerInstruction converts bytes processed by a Go helper (hashing,
// encoding) into the instruction budget: such loops run at a few
// nanoseconds per byte, a VM instruction costs 7 to 90, so 16 bytes per
// instruction charges a 16 MiB hash about a million instructions.
const bytesPerInstruction = 16

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

// walkStep is step i (from 0) of a Go loop over a table with l.Next, during
// which the count hook cannot fire. go-lua's next finds the current key by
// scanning the table's keys from the start, so step i over a hash part costs
// about i lookups (see luajson's tickEvery); weighting the steps by that
// checks the limits about every four million lookups, some 0.2 s, however
// large the table, and aborts the run once one is exceeded.
func (s *state) walkStep(i int) {
	r := s.cur
	if r == nil {
		return
	}
	if r.walkWork += 1 + i/4096; r.walkWork >= hookInterval {
		r.walkWork = 0
		if r.check() {
			panic(abortSignal{})
		}
	}
}

// onHook is the count hook. Once a limit is hit every later call panics
// again, so even code that somehow survived one abort cannot keep running.
func (s *state) onHook(_ *lua.State, _ lua.Debug) {
	r := s.cur
	if r == nil {
		return
	}
	if r.stop == "" {
		r.executed += int64(r.interval)
		r.check()
	}
	if r.stop != "" {
		panic(abortSignal{})
	}
}

// abortIfStopped re-raises the abort after a protected call inside the
// script returned, and escalates Go runtime errors that go-lua's protected
// call turned into ordinary errors: the state they leave behind is suspect.
func (s *state) abortIfStopped(err error) {
	r := s.cur
	if r == nil {
		return
	}
	if err != nil && !isLuaError(err) {
		r.crash(err.Error(), "")
	}
	if r.stop != "" {
		panic(abortSignal{})
	}
}

// isLuaError tells errors raised by Lua semantics from Go runtime panics
// (index out of range and the like) that go-lua's protect converts too.
func isLuaError(err error) bool {
	var re lua.RuntimeError
	return errors.As(err, &re) || errors.Is(err, lua.ErrorError) || errors.Is(err, lua.MemoryError) || errors.Is(err, lua.SyntaxError)
}

// protectedCall calls the function below nargs arguments. It returns the Lua
// error message (popped) if the call raised a Lua error; aborts and crashes
// surface as panics or in r.stop.
func (s *state) protectedCall(nargs, nresults int) (string, bool) {
	l := s.l
	err := l.ProtectedCall(nargs, nresults, 0)
	if s.cur.stop != "" {
		panic(abortSignal{})
	}
	if err == nil {
		return "", true
	}
	if !isLuaError(err) {
		s.cur.crash(err.Error(), "")
		panic(abortSignal{})
	}
	msg, ok := l.ToString(-1)
	if !ok {
		msg = errorText(err)
	}
	l.Pop(1)
	return msg, false
}

// Stack layout of an invocation.
const (
	idxReg = iota + 1
	idxArrayMeta
	idxChunk
	idxEnv
)

func (s *state) invoke(r *run, fn Function, req Request) (Result, bool) {
	l := s.l
	l.SetTop(0)
	lua.SetDebugHook(l, s.hook, lua.MaskCount, r.interval)
	s.pcg.Seed(rand.Uint64(), rand.Uint64()) // no randomseed leaks across invocations

	l.Field(lua.RegistryIndex, registryKey) // idxReg
	l.NewTable()                            // idxArrayMeta: fresh, so a script may modify it freely
	l.PushValue(idxArrayMeta)
	l.RawSetInt(idxReg, slotArrayMeta)

	if serr := s.pushChunk(fn); serr != nil {
		var se *SyntaxError
		if errors.As(serr, &se) {
			return failed(fmt.Sprintf("%s: syntax error: %v", fn.Name, se)), true
		}
		// The parser itself crashed: do not trust the state any more.
		return failed(fmt.Sprintf("%s: %v", fn.Name, serr)), false
	}

	s.pushEnv()
	s.setConfigTables(req)
	l.PushValue(idxEnv)
	if _, ok := lua.SetUpValue(l, idxChunk, 1); !ok {
		l.Pop(1)
	}

	l.PushValue(idxChunk)
	if msg, ok := s.protectedCall(0, 0); !ok {
		return failed(msg), !strings.HasSuffix(msg, "stack overflow")
	}

	l.PushString("handle")
	l.RawGet(idxEnv)
	if t := l.TypeOf(-1); t != lua.TypeFunction {
		if t == lua.TypeNil {
			return failed(fn.Name + ": handle is not defined; define function handle(req)"), true
		}
		return failed(fmt.Sprintf("%s: handle is a %s, not a function; define function handle(req)", fn.Name, t)), true
	}
	if err := s.pushRequest(req); err != nil {
		return failed(fmt.Sprintf("%s: %v", fn.Name, err)), true
	}
	if msg, ok := s.protectedCall(1, 1); !ok {
		// go-lua never shrinks a grown stack (up to a million slots after
		// runaway recursion); a fresh state is cheaper than keeping that.
		return failed(msg), !strings.HasSuffix(msg, "stack overflow")
	}

	value, resp, err := s.convertResult(l.Top(), idxArrayMeta)
	if err != nil {
		if errors.Is(err, errStopped) {
			panic(abortSignal{})
		}
		return failed(fmt.Sprintf("%s: %v", fn.Name, err)), true
	}
	return Result{Status: Succeeded, Value: value, Response: resp}, true
}

func failed(msg string) Result { return Result{Status: Failed, Error: msg} }

// pushChunk pushes the compiled chunk of fn, compiling it on a cache miss.
func (s *state) pushChunk(fn Function) error {
	l := s.l
	l.RawGetInt(idxReg, slotChunks)
	chunks := l.Top()
	key := chunkKey{fn.Name, fn.Version}
	if id, ok := s.chunks.get(key, fn.Source); ok {
		l.RawGetInt(chunks, id)
		if l.IsFunction(-1) {
			l.Remove(chunks)
			return nil
		}
		l.Pop(1)
	}
	if err := load(l, fn.Name, fn.Source); err != nil {
		l.Pop(1)
		return err
	}
	id, evicted := s.chunks.add(key, fn.Source)
	for _, old := range evicted {
		l.PushNil()
		l.RawSetInt(chunks, old)
	}
	l.PushValue(-1)
	l.RawSetInt(chunks, id)
	l.Remove(chunks)
	return nil
}

// pushEnv pushes a fresh global environment: an empty table reading through
// to the frozen base, plus one overlay per library. An overlay is an empty
// table whose metatable reads through to the real library, so a script may
// add or replace fields (common Lua style) without touching the shared
// library table; everything written vanishes with the environment.
func (s *state) pushEnv() {
	l := s.l
	l.CreateTable(0, len(libNames)+4)
	env := l.Top()
	l.RawGetInt(idxReg, slotEnvMeta)
	l.SetMetaTable(env)
	l.PushValue(env)
	l.SetField(env, "_G")
	l.RawGetInt(idxReg, slotLibMetas)
	metas := l.Top()
	for i, name := range libNames {
		l.NewTable()
		l.RawGetInt(metas, i+1)
		l.SetMetaTable(-2)
		if name == "string" {
			s.bindStringMethods(l.Top())
		}
		l.SetField(env, name)
	}
	l.Pop(1)
}

// bindStringMethods makes the string overlay at idx the __index of the
// string metatable, so that ("x"):f() sees what the script adds to or
// replaces in string (function string.trim(s) ... end, then s:trim()), as
// in Lua, where that __index is the string table itself. The metatable is
// shared by every string of the state, so it is rebound at the start of
// every invocation (whatever the previous one left there is replaced before
// any code runs) and reset to the real library by release. A script cannot
// rebind it itself: the metatable is protected by __metatable.
func (s *state) bindStringMethods(idx int) {
	l := s.l
	idx = l.AbsIndex(idx)
	l.RawGetInt(idxReg, slotStrMeta)
	l.PushString("__index")
	l.PushValue(idx)
	l.RawSet(-3)
	l.Pop(1)
}

// unbindStringMethods points the string metatable back at the real string
// library, so the finished invocation's overlay (and whatever the script
// stored in it) is not kept alive by the state until its next run.
func (s *state) unbindStringMethods() {
	l := s.l
	l.Field(lua.RegistryIndex, registryKey)
	l.RawGetInt(-1, slotStrMeta)
	l.PushString("__index")
	l.RawGetInt(-3, slotStrLib)
	l.RawSet(-3)
	l.Pop(2)
}

// setConfigTables gives the environment at idxEnv the function's
// configuration as env and secrets: plain tables, fresh per invocation like
// the environment itself.
func (s *state) setConfigTables(req Request) {
	l := s.l
	for _, t := range []struct {
		name   string
		values map[string]string
	}{{"env", req.Env}, {"secrets", req.Secrets}} {
		l.CreateTable(0, len(t.values))
		for k, v := range t.values {
			l.PushString(v)
			l.SetField(-2, k)
		}
		l.SetField(idxEnv, t.name)
	}
}

func (s *state) pushRequest(req Request) error {
	l := s.l
	l.CreateTable(0, 9)
	t := l.Top()
	setString := func(k, v string) {
		l.PushString(v)
		l.SetField(t, k)
	}
	setString("trigger", req.Trigger)
	setString("method", req.Method)
	path := req.Path
	if path == "" {
		path = "/"
	}
	setString("path", path)
	setString("body", string(req.Body))
	l.PushInteger(max(req.Attempt, 1))
	l.SetField(t, "attempt")
	for _, m := range []struct {
		name string
		m    map[string]string
	}{{"query", req.Query}, {"headers", req.Headers}} {
		l.CreateTable(0, len(m.m))
		for k, v := range m.m {
			if m.name == "headers" {
				k = strings.ToLower(k) // promised to scripts; free when already lower-case
			}
			l.PushString(v)
			l.SetField(-2, k)
		}
		l.SetField(t, m.name)
	}
	if len(req.Payload) > 0 {
		err := luajson.Decode(l, string(req.Payload), luajson.DecodeOptions{ArrayMeta: idxArrayMeta})
		if err != nil {
			return fmt.Errorf("request payload: %w", err)
		}
		l.SetField(t, "payload")
	}
	return nil
}
