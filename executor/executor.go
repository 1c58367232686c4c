package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"
)

// Function identifies code to run; Name+Version key the compiled-code caches
// (Version changes whenever Source changes).
type Function struct {
	Name    string
	Version int
	Source  string
}

// Request is what the script's handle(req) receives.
type Request struct {
	Trigger string            // "http" for /fn calls; later "api", "sql", "schedule"; exposed as req.trigger
	Method  string            // req.method
	Path    string            // req.path: part after /fn/{name}, "/" when empty
	Query   map[string]string // req.query (name -> string)
	Headers map[string]string // req.headers (lower-case name -> string)
	Body    []byte            // req.body (Lua string, may be binary)
	Payload json.RawMessage   // nil unless set; exposed decoded as req.payload (Lua value)
	Attempt int               // req.attempt: 1 for the first attempt, 2 for the first retry, ...
	// Env and Secrets are the function's configuration, env.NAME and
	// secrets.NAME in the script.
	Env     map[string]string
	Secrets map[string]string
	// Host answers the script's calls outside the sandbox (kv, http,
	// invoking functions); nil leaves those libraries failing with an error.
	Host Host
	// StreamLogs also hands each log line to Host as it is written (method
	// "log", arguments a LiveLog), for someone watching the invocation
	// live; Result.Logs has every line either way.
	StreamLogs bool
}

// LiveLog is a log line sent to the Host while the run goes on.
type LiveLog struct {
	Index int `json:"index"` // position in Result.Logs
	LogEntry
}

// Host answers the calls a script makes outside its sandbox. Method names
// the call ("kv.get", "http.request", ...); arguments and results are JSON,
// which is what crosses a sandbox process's pipe. An error becomes a Lua
// error in the script.
type Host interface {
	Call(ctx context.Context, method string, args json.RawMessage) (json.RawMessage, error)
}

// Limits bounds one invocation.
type Limits struct {
	Timeout      time.Duration // wall clock; 0 means DefaultTimeout
	Instructions int64         // VM instruction budget; 0 means DefaultInstructions
}

// DefaultTimeout is the wall-clock limit when Limits.Timeout is 0.
const DefaultTimeout = 10 * time.Second

// DefaultInstructions is the VM instruction budget when Limits.Instructions
// is 0. go-lua's speed depends heavily on the kind of instruction. Measured
// with BenchmarkInstructionRate on the 2-core development machine: an empty
// `while true do end` runs about 150 M instructions/s, arithmetic or
// function-call loops about 60 M/s (every number result is boxed), loops
// writing table fields about 25 M/s and string-building loops about 11 M/s.
// 40 M therefore stops a runaway script after roughly 0.3 s (empty loop),
// 0.7 s (arithmetic), 1.6 s (table-heavy, the closest to real handlers) or
// 3.5 s (string-heavy) of CPU, inside DefaultTimeout, while an ordinary
// handler (a few thousand instructions) has four orders of magnitude of
// headroom.
const DefaultInstructions = 40_000_000

// Status is the outcome of a run.
type Status string

// Run outcomes.
const (
	Succeeded Status = "succeeded"
	Failed    Status = "failed"
	TimedOut  Status = "timed_out"
	Cancelled Status = "cancelled"
)

// LogEntry is one line written by print or log.* during a run.
type LogEntry struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"` // "info" for print, else debug/info/warn/error
	Message string    `json:"message"`
	// Fields are the structured fields of log.*("msg", {k = v}), as JSON.
	Fields json.RawMessage `json:"fields,omitempty"`
}

// Response is the HTTP interpretation of the handler's return value.
type Response struct {
	Status  int
	Headers map[string]string
	Body    []byte
}

// Result is the outcome of one invocation.
type Result struct {
	Status   Status
	Value    json.RawMessage // return value as JSON ("null" for nil); invalid UTF-8 in strings replaced with U+FFFD
	Response Response        // always filled when Status==Succeeded
	Error    string          // human-readable, includes "<name>:<line>:" for Lua errors; empty on success
	Logs     []LogEntry
	Duration time.Duration // time spent running (compile+run), not waiting for a free state
	// NoRetry marks a failure that a retry would repeat at the platform's
	// expense: the script killed its sandbox process (by exhausting its
	// memory, most likely).
	NoRetry bool
	// Limit names the sandbox limit that stopped the run, if one did.
	Limit Limit
}

// Limit is a sandbox limit a run can hit.
type Limit string

// The limits a Result can name.
const (
	LimitTimeout      Limit = "timeout"      // wall clock (Limits.Timeout or ctx's deadline)
	LimitMemory       Limit = "memory"       // live heap, or the sandbox process's memory
	LimitInstructions Limit = "instructions" // VM instruction budget
)

// Config configures a Pool.
type Config struct {
	Size      int          // number of Lua states = max concurrent runs; 0 means runtime.GOMAXPROCS(0)
	CacheSize int          // compiled functions cached per state (LRU); 0 means 64
	Logger    *slog.Logger // nil means slog.Default()
	// HeapLimit, when set, fails a run once the process's Go heap holds
	// more than this many bytes of live objects. It measures one
	// invocation only where the pool runs alone in its process with Size 1:
	// a sandbox child.
	HeapLimit int64
}

const defaultCacheSize = 64

// Pool runs functions on a fixed set of reusable Lua states. It is safe for
// concurrent use; each state is used by one goroutine at a time.
type Pool struct {
	heapLimit int64
	cacheSize int
	logger    *slog.Logger
	// slots holds one entry per state. A nil entry is a state not created
	// yet or discarded after an abort; it is (re)built on next use, so a
	// broken state never runs a second invocation.
	slots     chan *state
	size      int
	closed    chan struct{}
	closeOnce sync.Once
	// extend, when set, runs on every new state after the sandbox is built;
	// tests use it to add globals that provoke failures the real libraries
	// cannot.
	extend func(s *state)
}

// NewPool returns a pool of cfg.Size Lua states. States are created lazily,
// on first use.
func NewPool(cfg Config) *Pool {
	p := &Pool{
		size:      cfg.Size,
		heapLimit: cfg.HeapLimit,
		cacheSize: cfg.CacheSize,
		logger:    cfg.Logger,
		closed:    make(chan struct{}),
	}
	if p.size <= 0 {
		p.size = runtime.GOMAXPROCS(0)
	}
	if p.cacheSize <= 0 {
		p.cacheSize = defaultCacheSize
	}
	if p.logger == nil {
		p.logger = slog.Default()
	}
	p.slots = make(chan *state, p.size)
	for range p.size {
		p.slots <- nil
	}
	return p
}

var errClosed = errors.New("executor: pool is closed")

// Run waits for a free state (respecting ctx), runs fn's handle(req) under
// limits, and always returns a Result: problems are reported as Status Failed
// with Error set, never as a panic.
//
// ctx cancellation while waiting or running gives Cancelled; ctx's deadline,
// limits.Timeout or the instruction budget give TimedOut.
func (p *Pool) Run(ctx context.Context, fn Function, req Request, limits Limits) Result {
	if ctx == nil {
		ctx = context.Background()
	}
	select {
	case <-p.closed:
		return Result{Status: Failed, Error: errClosed.Error()}
	default:
	}
	if ctx.Err() != nil {
		return waitAborted(ctx)
	}
	var s *state
	select {
	case s = <-p.slots:
	case <-ctx.Done():
		return waitAborted(ctx)
	case <-p.closed:
		return Result{Status: Failed, Error: errClosed.Error()}
	}
	healthy := false
	defer func() {
		if !healthy {
			s = nil
		}
		p.slots <- s
	}()
	start := time.Now()
	if s == nil {
		var err error
		if s, err = p.newState(); err != nil {
			p.logger.Error("executor: cannot create Lua state", "err", err)
			return Result{Status: Failed, Error: err.Error(), Duration: time.Since(start)}
		}
	}
	var res Result
	res, healthy = s.execute(ctx, start, fn, req, limits, p.heapLimit)
	return res
}

func (p *Pool) newState() (s *state, err error) {
	defer func() {
		if v := recover(); v != nil {
			s, err = nil, fmt.Errorf("executor: building Lua state: panic: %v", v)
		}
	}()
	s = newState(p.cacheSize, p.logger)
	if p.extend != nil {
		p.extend(s)
	}
	return s, nil
}

func waitAborted(ctx context.Context) Result {
	res := Result{Status: Cancelled, Error: "executor: waiting for a free Lua state: " + context.Cause(ctx).Error()}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		res.Status, res.Limit = TimedOut, LimitTimeout
	}
	return res
}

// Usage reports how many of the pool's states are running an invocation,
// out of how many.
func (p *Pool) Usage() (busy, capacity int) {
	return p.size - len(p.slots), p.size
}

// Close stops accepting runs and waits until the running ones finish (each is
// bounded by its limits). Runs started after Close return Failed. Close is
// idempotent.
func (p *Pool) Close() {
	p.closeOnce.Do(func() {
		close(p.closed)
		for range p.size {
			<-p.slots
		}
	})
}
