package executor

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Sandboxes runs functions in supervised child processes, one invocation
// at a time per child.
//
// go-lua has no allocation accounting, and an allocation the machine cannot
// satisfy is a fatal Go runtime error that no recover catches. Inside a
// child, the heap is the invocation's own: the count hook aborts a run that
// grows it past HeapLimit, and an operating-system limit on the child's data
// segment (RLIMIT_DATA) turns whatever slips through (one huge allocation, a
// doubling `s = s .. s` between two hook calls) into the death of that child
// alone. The parent reports the invocation as failed and starts a new child.
// Children are persistent: a run costs a round trip over a pipe, not a
// process start. But the Go runtime never unmaps heap memory, which the
// data limit counts, so a child whose mappings grew by more than half of
// MemoryLimit retires after its run: the next run must not find less room
// than it was promised because an earlier one used much.
type Sandboxes struct {
	config SandboxConfig
	logger *slog.Logger
	// slots holds one entry per child; nil is a child not started yet, or
	// dead and to be replaced on next use.
	slots     chan *child
	closed    chan struct{}
	closeOnce sync.Once
	nextID    atomic.Uint64
	// testHooks gives children globals that misbehave on purpose (see
	// childTestHooksEnv); only this package's tests set it.
	testHooks bool

	// reaper stops children idle for IdleTimeout; armed only while some
	// live child is idle, so an idle server runs no timer for them.
	reaperMu sync.Mutex
	reaper   *time.Timer
	reapAt   time.Time
}

// SandboxConfig configures Sandboxes.
type SandboxConfig struct {
	// Processes is the number of children, and so of concurrent runs; 0
	// means GOMAXPROCS.
	Processes int
	// MemoryLimit caps the memory a child may map, in bytes (RLIMIT_DATA),
	// on top of what the Go runtime has mapped when the child starts; 0
	// means DefaultSandboxMemory. The in-VM check fails a run whose live
	// heap passes half of it, so that most scripts that use too much memory
	// end with a clean error rather than a dead child.
	MemoryLimit int64
	// Command starts a child; the default re-executes this program, which
	// must call RunSandboxIfChild first thing in main (and in TestMain).
	Command []string
	// IdleTimeout stops a child that ran nothing for this long, giving its
	// memory back; the next run starts a new one (about 10 ms). 0 means
	// DefaultSandboxIdle.
	IdleTimeout time.Duration
	// KillGrace is how long a child may take past a run's deadline, or
	// after a cancel, before it is killed; 0 means DefaultKillGrace. The
	// count hook stops a script within microseconds; only a long
	// uninterruptible Go call (table.sort of millions of elements) takes
	// longer.
	KillGrace time.Duration
	Logger    *slog.Logger
}

// DefaultSandboxMemory is a child's default memory limit: a script gets
// 128 MiB of live heap, as Cloudflare Workers allows 128 MB.
const DefaultSandboxMemory = 256 << 20

// childEnv marks a process as a sandbox child; childMemoryEnv carries its
// memory limit.
const (
	childEnv          = "PICLOUD_SANDBOX_CHILD"
	childMemoryEnv    = "PICLOUD_SANDBOX_MEMORY"
	childTestHooksEnv = "PICLOUD_SANDBOX_TEST_HOOKS"
)

// DefaultSandboxIdle is SandboxConfig.IdleTimeout's default.
const DefaultSandboxIdle = 5 * time.Minute

// DefaultKillGrace is SandboxConfig.KillGrace's default.
const DefaultKillGrace = 2 * time.Second

// NewSandboxes returns a pool of children, started on first use.
func NewSandboxes(config SandboxConfig) (*Sandboxes, error) {
	if config.Processes <= 0 {
		config.Processes = runtime.GOMAXPROCS(0)
	}
	if config.MemoryLimit <= 0 {
		config.MemoryLimit = DefaultSandboxMemory
	}
	if config.KillGrace <= 0 {
		config.KillGrace = DefaultKillGrace
	}
	if config.IdleTimeout <= 0 {
		config.IdleTimeout = DefaultSandboxIdle
	}
	if config.Logger == nil {
		config.Logger = slog.Default()
	}
	if len(config.Command) == 0 {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("executor: find own executable for sandbox children: %w", err)
		}
		config.Command = []string{self}
	}
	s := &Sandboxes{
		config: config,
		logger: config.Logger,
		slots:  make(chan *child, config.Processes),
		closed: make(chan struct{}),
	}
	for range config.Processes {
		s.slots <- nil
	}
	return s, nil
}

// Run runs fn in a child and returns its Result, like Pool.Run. A child
// that dies during the run (out of memory, most likely) gives Failed with
// NoRetry set; one that does not stop by the deadline is killed.
func (s *Sandboxes) Run(ctx context.Context, fn Function, req Request, limits Limits) Result {
	select {
	case <-s.closed:
		return Result{Status: Failed, Error: errClosed.Error()}
	default:
	}
	var c *child
	select {
	case c = <-s.slots:
	case <-ctx.Done():
		return waitAborted(ctx)
	case <-s.closed:
		return Result{Status: Failed, Error: errClosed.Error()}
	}
	start := time.Now()
	if c == nil || c.dead() {
		var err error
		if c, err = s.startChild(); err != nil {
			s.slots <- nil
			s.logger.Error("executor: cannot start a sandbox process", "error", err)
			return Result{Status: Failed, Error: "executor: " + err.Error(), Duration: time.Since(start)}
		}
	}
	res, healthy := c.run(ctx, s.nextID.Add(1), fn, req, limits)
	if !healthy {
		c.kill()
		c.close()
		c = nil
	}
	s.release(c)
	if res.Duration == 0 {
		res.Duration = time.Since(start)
	}
	return res
}

// release returns a child (nil for a dead one) to the pool and makes sure
// the reaper will look at it once it has been idle long enough.
func (s *Sandboxes) release(c *child) {
	if c != nil {
		c.lastUsed = time.Now()
		s.armReaper(c.lastUsed.Add(s.config.IdleTimeout))
	}
	s.slots <- c
}

func (s *Sandboxes) armReaper(at time.Time) {
	s.reaperMu.Lock()
	defer s.reaperMu.Unlock()
	if s.reaper != nil && !s.reapAt.IsZero() && !at.Before(s.reapAt) {
		return
	}
	s.reapAt = at
	if s.reaper == nil {
		s.reaper = time.AfterFunc(time.Until(at), s.reap)
	} else {
		s.reaper.Reset(time.Until(at))
	}
}

// reap stops the children that have been idle for IdleTimeout. It takes
// only children that are in the pool now, without waiting for busy ones.
func (s *Sandboxes) reap() {
	s.reaperMu.Lock()
	s.reapAt = time.Time{}
	s.reaperMu.Unlock()
	var taken []*child
	var next time.Time
	for range s.config.Processes {
		select {
		case c := <-s.slots:
			if c != nil && time.Since(c.lastUsed) >= s.config.IdleTimeout {
				c.close()
				c = nil
			}
			if c != nil && (next.IsZero() || c.lastUsed.Before(next)) {
				next = c.lastUsed
			}
			taken = append(taken, c)
		default:
		}
	}
	for _, c := range taken {
		s.slots <- c
	}
	if !next.IsZero() {
		s.armReaper(next.Add(s.config.IdleTimeout))
	}
}

// Usage reports how many sandbox processes are running an invocation, out
// of how many may.
func (s *Sandboxes) Usage() (busy, capacity int) {
	// The reaper holds idle children for a moment while it looks at them,
	// which counts them as busy for that moment: harmless in a gauge.
	return s.config.Processes - len(s.slots), s.config.Processes
}

// Close stops every child once its current run ends. Idempotent.
func (s *Sandboxes) Close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.reaperMu.Lock()
		if s.reaper != nil {
			s.reaper.Stop()
		}
		s.reaperMu.Unlock()
		for range s.config.Processes {
			if c := <-s.slots; c != nil {
				c.close()
			}
		}
	})
}

func (s *Sandboxes) startChild() (*child, error) {
	cmd := exec.Command(s.config.Command[0], s.config.Command[1:]...)
	// A clean environment: a script that escaped the VM finds no database
	// URL or secret in its process.
	cmd.Env = []string{
		childEnv + "=1",
		childMemoryEnv + "=" + strconv.FormatInt(s.config.MemoryLimit, 10),
		"GOMAXPROCS=1",
	}
	if path := os.Getenv("PATH"); path != "" {
		cmd.Env = append(cmd.Env, "PATH="+path)
	}
	if s.testHooks {
		cmd.Env = append(cmd.Env, childTestHooksEnv+"=1")
	}
	configureChild(cmd)
	// Pipes made here rather than by exec.Cmd, whose Wait would close the
	// read end while the last result may still be unread.
	var pipes [6]*os.File // in r/w, out r/w, control r/w
	for i := 0; i < len(pipes); i += 2 {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll(pipes[:i])
			return nil, err
		}
		pipes[i], pipes[i+1] = r, w
	}
	inR, inW, outR, outW, ctlR, ctlW := pipes[0], pipes[1], pipes[2], pipes[3], pipes[4], pipes[5]
	cmd.Stdin, cmd.Stdout, cmd.ExtraFiles = inR, outW, []*os.File{ctlR}
	stderr := &headBuffer{max: 4 << 10}
	cmd.Stderr = stderr
	err := cmd.Start()
	closeAll([]*os.File{inR, outW, ctlR}) // the child's ends
	if err != nil {
		closeAll([]*os.File{inW, outR, ctlW})
		return nil, fmt.Errorf("start %s: %w", s.config.Command[0], err)
	}
	c := &child{
		cmd:     cmd,
		in:      inW,
		out:     outR,
		control: ctlW,
		enc:     gob.NewEncoder(inW),
		dec:     gob.NewDecoder(outR),
		ctlEnc:  gob.NewEncoder(ctlW),
		stderr:  stderr,
		exited:  make(chan struct{}),
		memory:  s.config.MemoryLimit,
		grace:   s.config.KillGrace,
		logger:  s.logger,
	}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		if f != nil {
			_ = f.Close()
		}
	}
}

// child is one sandbox process, used by one run at a time.
//
// A run is a conversation on the child's stdin and stdout, held by the
// goroutine that called Run: it writes the invocation, answers the host
// calls the script makes, and reads the result. Nothing else reads or
// writes those pipes, so a run costs two wake-ups, as a bare pipe round
// trip does. A cancel, which must reach the child while it runs, travels
// on a third pipe.
type child struct {
	cmd      *exec.Cmd
	in       *os.File
	out      *os.File
	control  *os.File
	enc      *gob.Encoder
	dec      *gob.Decoder
	ctlMu    sync.Mutex
	ctlEnc   *gob.Encoder
	stderr   *headBuffer
	exited   chan struct{}
	waitErr  error
	lastUsed time.Time
	memory   int64
	grace    time.Duration
	logger   *slog.Logger
}

func (c *child) dead() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// run performs one invocation in the child. healthy is false when the
// child must not be reused.
func (c *child) run(ctx context.Context, id uint64, fn Function, req Request, limits Limits) (Result, bool) {
	// What the child wrote to stderr during earlier runs (its operator log)
	// would otherwise fill the head and hide why it dies in this one.
	c.stderr.reset()
	timeout := limits.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = max(time.Until(d), time.Millisecond)
	}
	wireReq := wireRun{ID: id, Function: fn, Request: req, Limits: limits}
	wireReq.Request.Host = nil
	wireReq.HasHost = req.Host != nil
	wireReq.Limits.Timeout = timeout
	if err := c.enc.Encode(&wireMessage{Run: &wireReq}); err != nil {
		c.kill()
		return c.diedResult(), false
	}

	// Past the deadline and its grace, or the grace after a cancel, the
	// child is killed; the read below then fails.
	var mu sync.Mutex
	var killedBecause error
	killFor := func(reason error) {
		mu.Lock()
		if killedBecause == nil {
			killedBecause = reason
		}
		mu.Unlock()
		c.kill()
	}
	hard := time.AfterFunc(timeout+c.grace, func() { killFor(context.DeadlineExceeded) })
	defer hard.Stop()
	stopCancel := context.AfterFunc(ctx, func() {
		// The run's timeout already includes ctx's deadline, so the child
		// times out by itself; a cancel must be sent.
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			c.ctlMu.Lock()
			_ = c.ctlEnc.Encode(&wireCancel{ID: id, Reason: context.Cause(ctx).Error()})
			c.ctlMu.Unlock()
		}
		hard.Reset(c.grace)
	})
	defer stopCancel()

	for {
		var m wireMessage
		if err := c.dec.Decode(&m); err != nil {
			mu.Lock()
			reason := killedBecause
			mu.Unlock()
			switch {
			case reason == nil:
				c.kill() // broke the protocol, or died: make sure
				return c.diedResult(), false
			case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
				return Result{Status: Cancelled, Error: fmt.Sprintf("%s: cancelled: %v; the sandbox did not stop within %v and was killed", fn.Name, context.Cause(ctx), c.grace)}, false
			default:
				return Result{Status: TimedOut, Limit: LimitTimeout, Error: fmt.Sprintf("%s: timed out; the sandbox did not stop within %v and was killed", fn.Name, c.grace)}, false
			}
		}
		switch {
		case m.Call != nil:
			reply := c.serveHostCall(ctx, req.Host, *m.Call)
			if err := c.enc.Encode(&wireMessage{Reply: &reply}); err != nil {
				c.kill()
				return c.diedResult(), false
			}
		case m.Result != nil && m.Result.ID == id && m.Result.Dropped:
			// The cancel reached the child before the run did.
			return waitAborted(ctx), true
		case m.Result != nil && m.Result.ID == id:
			return m.Result.Result, !m.Result.Retire
		default:
			c.kill()
			return Result{Status: Failed, Error: "executor: sandbox protocol error"}, false
		}
	}
}

func (c *child) serveHostCall(ctx context.Context, host Host, call wireHostCall) wireHostReply {
	reply := wireHostReply{CallID: call.CallID}
	if host == nil {
		reply.Error = "no host API is available here"
		return reply
	}
	ctx, cancel := context.WithTimeout(ctx, call.Timeout)
	defer cancel()
	result, err := host.Call(ctx, call.Method, call.Args)
	reply.Result = result
	if err != nil {
		reply.Error = err.Error()
	}
	return reply
}

func (c *child) diedResult() Result {
	<-c.exited
	head := strings.TrimSpace(c.stderr.String())
	reason := fmt.Sprintf("exit: %v", c.waitErr)
	var limit Limit
	// The Go runtime says "out of memory" or "cannot allocate memory";
	// under the race detector its allocator says "failed to allocate".
	if strings.Contains(head, "out of memory") || strings.Contains(head, "cannot allocate memory") || strings.Contains(head, "failed to allocate") {
		reason = fmt.Sprintf("it ran out of memory (limit %d MiB)", c.memory>>20)
		limit = LimitMemory
	} else if head != "" {
		first, _, _ := strings.Cut(head, "\n")
		reason += ": " + first
	}
	c.logger.Warn("executor: sandbox process died", "reason", reason)
	return Result{Status: Failed, NoRetry: true, Limit: limit, Error: "the sandbox running this invocation died: " + reason}
}

func (c *child) kill() {
	if !c.dead() {
		_ = c.cmd.Process.Kill()
	}
}

// close ends the child by closing its input; it exits when it sees EOF.
func (c *child) close() {
	_ = c.in.Close()
	select {
	case <-c.exited:
	case <-time.After(c.grace):
		c.kill()
		<-c.exited
	}
	closeAll([]*os.File{c.out, c.control})
}

// headBuffer keeps the first max bytes written since the last reset: the
// start of a child's stderr during a run, where the Go runtime writes why
// it died, before the stacks.
type headBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (h *headBuffer) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if room := h.max - len(h.buf); room > 0 {
		h.buf = append(h.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (h *headBuffer) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf = h.buf[:0]
}

func (h *headBuffer) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return string(h.buf)
}
