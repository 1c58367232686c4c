package executor

import (
	"bufio"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sandboxes runs functions in supervised child processes, one invocation
// at a time per child, with the next ones already waiting in its pipe.
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
//
// # Pipelining
//
// A run waits in a queue shared by all children until one takes it. An
// idle child takes it at once; when none is idle and fewer than Processes
// are running, a new one is started; otherwise the run is queued behind
// the one a child is running, up to Pipeline runs per child, already
// written to the child's input, where the child's reader keeps them in a
// FIFO. So when a run ends the child starts the next without waiting for
// the parent, which meanwhile takes the result, wakes its caller and
// writes new runs. A busy child is topped up once half of its queue is
// done, several runs in one write; one whose run has gone on for
// milliseconds is given none (see pipelineHeadAge). The goroutine that
// called Run for the run at the head of a child's queue reads the child's
// output (see child), so a lone run costs one wake-up, as before. The
// child answers every run, in order, with its result or, for a run
// cancelled before it started, "dropped"; runs are numbered per child.
//
// Each run is still on its own: its timeout, and the kill grace, count from
// when it reaches the head of its child's queue, which is when the child's
// previous result arrives (the child cannot start it earlier, so this errs
// on the generous side by the pipe's latency); a ctx deadline is sent as
// such and checked by the child against its own clock. A run whose ctx ends
// while it is queued returns at once, as one waiting for a free child
// always did, and the child drops it (a cancel on the control pipe naming
// it) without stopping what it runs. Only the run at the head can get its
// child killed (timeout or cancel past the grace); a child that dies, or
// retires, costs only that run: the runs queued behind it go back to the
// front of the shared queue and run elsewhere, normally.
//
// Measured on the 2-core development machine, shared with other work
// (load 5 to 7), with go test -run '^$' -bench Sandbox -benchtime 3s
// -count 3: 32 goroutines calling Run on 2 children
// (BenchmarkSandboxRunParallel) ran 13-16 k runs/s of `return 1` before
// pipelining and 29-34 k after (9-10 k against 28-29 k in a more loaded
// round); the hello example went from 12-14 k to 21-27 k runs/s. A lone
// caller's run (BenchmarkSandboxRunHello) took 58-63 µs before and 58-67
// µs after: within the noise of this machine.
type Sandboxes struct {
	config    SandboxConfig
	logger    *slog.Logger
	closed    chan struct{}
	closeOnce sync.Once
	// testHooks gives children globals that misbehave on purpose (see
	// childTestHooksEnv); only this package's tests set it.
	testHooks bool
	// headAge is pipelineHeadAge; tests that queue runs behind a slow one
	// raise it.
	headAge time.Duration

	mu sync.Mutex
	// changed is signalled (with mu) when a child's queue empties, a child
	// goes or a start ends: Close waits on it.
	changed sync.Cond
	// children are the live children that take runs; a retiring, dying or
	// reaped child leaves the list first.
	children []*child
	starting int           // children being started
	pending  []*sandboxRun // runs no child has taken, oldest first
	closing  bool
	// live counts the children started and not yet accounted for by lost.
	live sync.WaitGroup

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
	// Pipeline is how many runs a child may be given at once: the one it
	// runs and those queued behind it, so that it finds its next run
	// already in its pipe when one ends. 1 turns pipelining off; 0 means
	// DefaultSandboxPipeline. A run queued behind a slow one waits for it,
	// so larger is not better once the children never idle.
	Pipeline int
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

// DefaultSandboxPipeline is SandboxConfig.Pipeline's default, chosen with
// BenchmarkSandboxRunParallel (32 callers, 2 children, `return 1`) on the
// 2-core development machine: 2 gave 16 k runs/s, 4 gave 21-24 k, 8 gave
// 26-30 k, 16 gave 36-37 k and 32 gave 29-31 k (without pipelining, 13-14
// k). Deeper queues cost nothing at low load, where a run finds an idle
// child, but under load a run that turns out slow holds up to Pipeline-1
// others queued behind it.
const DefaultSandboxPipeline = 16

// pipelineHeadAge is how long a child's current run may have gone on for
// the child to still be given runs behind it. Queueing saves about 50 µs
// a run, which matters for runs of tens of microseconds; a run that has
// taken milliseconds may take seconds (a host call, a big sort), and runs
// queued behind it would wait for it while another child may be free.
const pipelineHeadAge = 2 * time.Millisecond

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
	if config.Pipeline <= 0 {
		config.Pipeline = DefaultSandboxPipeline
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
		config:  config,
		logger:  config.Logger,
		closed:  make(chan struct{}),
		headAge: pipelineHeadAge,
	}
	s.changed.L = &s.mu
	return s, nil
}

// sandboxRun is one call of Run, from the moment it is queued until its
// result.
type sandboxRun struct {
	ctx    context.Context
	fn     Function
	req    Request
	limits Limits
	// done is closed once res is set.
	done chan struct{}
	res  Result
	// lead hands the run's caller the reading of its child's output, once
	// the run is at the head of the child's queue (see child.reading).
	lead chan *child

	// The rest is guarded by Sandboxes.mu.
	child *child // nil while pending
	// id names the run on child: the child's own sequence, so that a
	// child sees increasing IDs even when a run comes back from another.
	id      uint64
	sent    bool      // handed to the writer: the child may have read it
	started time.Time // when it reached the head of child's queue
	timer   *time.Timer
	// finished is set with res. A run whose caller gave up while it was
	// queued in a child's pipe (abandoned) stays in the child's queue,
	// finished, until the child says it dropped it (or ran it, if the
	// cancel came too late).
	finished  bool
	abandoned bool
}

// timeout is the run's wall-clock limit from now.
func (r *sandboxRun) timeout() time.Duration {
	timeout := r.limits.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if d, ok := r.ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = max(time.Until(d), time.Millisecond)
	}
	return timeout
}

// wire is what the child is sent; built under Sandboxes.mu, which guards
// r.id, and written without it.
func (r *sandboxRun) wire() wireRun {
	w := wireRun{ID: r.id, Function: r.fn, Request: r.req, HasHost: r.req.Host != nil, Limits: r.limits}
	w.Request.Host = nil
	if d, ok := r.ctx.Deadline(); ok {
		// Relative: the child anchors it on its own clock when it reads it,
		// microseconds from now.
		w.Deadline = max(time.Until(d), 1)
	}
	return w
}

var closedResult = Result{Status: Failed, Error: errClosed.Error()}

// Run runs fn in a child and returns its Result, like Pool.Run. A child
// that dies during the run (out of memory, most likely) gives Failed with
// NoRetry set; one that does not stop by the deadline is killed.
func (s *Sandboxes) Run(ctx context.Context, fn Function, req Request, limits Limits) Result {
	if ctx == nil {
		ctx = context.Background()
	}
	select {
	case <-s.closed:
		return closedResult
	default:
	}
	if ctx.Err() != nil {
		return waitAborted(ctx)
	}
	r := &sandboxRun{ctx: ctx, fn: fn, req: req, limits: limits, done: make(chan struct{}), lead: make(chan *child, 1)}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return closedResult
	}
	s.pending = append(s.pending, r)
	w := s.dispatchLocked()
	s.mu.Unlock()
	s.do(w)
	return s.wait(r)
}

// wait waits for r's result, reading its child's output once r is at the
// head of the child's queue.
func (s *Sandboxes) wait(r *sandboxRun) Result {
	ctxDone := r.ctx.Done()
	for {
		select {
		case <-r.done:
			return r.res
		case c := <-r.lead:
			// Blocked in a read, the caller cannot watch its ctx itself.
			stop := context.AfterFunc(r.ctx, func() { s.abandon(r) })
			s.serve(c, r)
			stop()
		case <-ctxDone:
			ctxDone = nil
			if res, ok := s.abandon(r); ok {
				return res
			}
		}
	}
}

// abandon handles the end of r's ctx. A run no child has started returns
// at once, as one waiting for a free child always did; the running one
// (the head of its child's queue) is cancelled, its ctx deadline being the
// child's too, and killed if it does not stop within the grace.
func (s *Sandboxes) abandon(r *sandboxRun) (Result, bool) {
	s.mu.Lock()
	if r.finished {
		s.mu.Unlock()
		return r.res, true
	}
	res := waitAborted(r.ctx)
	c := r.child
	switch {
	case c == nil:
		if i := slices.Index(s.pending, r); i >= 0 {
			s.pending = slices.Delete(s.pending, i, i+1)
		}
		s.finishLocked(r, res)
		s.mu.Unlock()
		return res, true
	case c.queue[0] == r:
		r.timer.Reset(s.config.KillGrace)
		id := r.id
		s.mu.Unlock()
		if !errors.Is(r.ctx.Err(), context.DeadlineExceeded) {
			c.cancel(id, context.Cause(r.ctx).Error())
		}
		return Result{}, false
	case !r.sent:
		// Not written yet: the child will never hear of it.
		c.queue = slices.DeleteFunc(c.queue, func(q *sandboxRun) bool { return q == r })
		c.unsent = slices.DeleteFunc(c.unsent, func(q *sandboxRun) bool { return q == r })
		s.finishLocked(r, res)
		w := s.dispatchLocked()
		s.mu.Unlock()
		s.do(w)
		return res, true
	default:
		// Queued in the child's pipe: the child drops it when told, and
		// says so when it comes to it. Until then it keeps its place in
		// the queue, which is the child's order.
		r.abandoned = true
		s.finishLocked(r, res)
		id := r.id
		s.mu.Unlock()
		c.cancel(id, context.Cause(r.ctx).Error())
		return res, true
	}
}

// finishLocked gives r its result, once.
func (s *Sandboxes) finishLocked(r *sandboxRun, res Result) {
	if r.finished {
		return
	}
	r.finished = true
	r.res = res
	if r.timer != nil {
		r.timer.Stop()
	}
	close(r.done)
}

// work is what a change of the queues asks for, done once mu is released:
// children to start, children to write runs to, a reaper to arm.
type work struct {
	start  int
	flush  []*child
	reapAt time.Time
}

func (s *Sandboxes) do(w work) {
	for range w.start {
		go s.addChild()
	}
	for _, c := range w.flush {
		s.flush(c)
	}
	if !w.reapAt.IsZero() {
		s.armReaper(w.reapAt)
	}
}

// dispatchLocked gives pending runs to children. An idle child takes one
// at once. Otherwise a new child is started if the pool is not full: a
// run queued behind a busy child waits for however long its run takes,
// and a start costs about 10 ms once. Only when every child is running
// (or starting) are runs queued behind busy ones, to the least loaded:
// one whose queue is down to half of Pipeline is filled up in one write
// (fewer writes, and fewer wake-ups of the child's reader, than a run per
// result: see DefaultSandboxPipeline), and one whose run has gone on for
// longer than pipelineHeadAge takes none until it ends.
func (s *Sandboxes) dispatchLocked() work {
	var w work
	var buf [16]*child
	takers := buf[:0]
	var now time.Time
	for _, c := range s.children {
		switch {
		case c.dead():
		case len(c.queue) == 0:
			takers = append(takers, c)
		case len(c.queue) > s.config.Pipeline/2:
		default:
			if now.IsZero() {
				now = time.Now()
			}
			if now.Sub(c.queue[0].started) < s.headAge {
				takers = append(takers, c)
			}
		}
	}
	for len(s.pending) > 0 {
		var c *child
		for _, cc := range takers {
			if len(cc.queue) < s.config.Pipeline && (c == nil || len(cc.queue) < len(c.queue)) {
				c = cc
			}
		}
		if c == nil || len(c.queue) > 0 {
			if !s.closing && len(s.children)+s.starting < s.config.Processes {
				if s.starting < len(s.pending) {
					s.starting++
					w.start++
					continue
				}
				break // the children being started take the rest
			}
			if c == nil {
				break // no child takes runs now; a result makes room
			}
		}
		r := s.pending[0]
		s.pending[0] = nil
		s.pending = s.pending[1:]
		c.nextID++
		r.child, r.id = c, c.nextID
		c.queue = append(c.queue, r)
		c.unsent = append(c.unsent, r)
		if len(c.queue) == 1 {
			s.startLocked(c, r)
			if !c.reading {
				c.reading = true
				r.lead <- c
			}
		}
		if !c.flushing {
			c.flushing = true
			w.flush = append(w.flush, c)
		}
	}
	if s.closing && len(s.children) == 0 && s.starting == 0 {
		for _, r := range s.pending {
			s.finishLocked(r, closedResult)
		}
		s.pending = nil
	}
	return w
}

// startLocked makes r the head of c's queue: the child runs it now, or as
// soon as it has read it. Its time limit counts from here.
func (s *Sandboxes) startLocked(c *child, r *sandboxRun) {
	r.started = time.Now()
	// What the child wrote to stderr during earlier runs (its operator log)
	// would otherwise fill the head and hide why it dies in this one.
	c.stderr.reset()
	limit := s.config.KillGrace
	if !r.abandoned {
		limit += r.timeout()
	}
	// Past the deadline and its grace, or the grace after a cancel, the
	// child is killed; its reader then reports the run's end.
	r.timer = time.AfterFunc(limit, func() { s.expire(c, r) })
}

func (s *Sandboxes) expire(c *child, r *sandboxRun) {
	s.mu.Lock()
	head := len(c.queue) > 0 && c.queue[0] == r
	if head && c.killedFor == nil {
		c.killedFor = r
	}
	s.mu.Unlock()
	if head {
		c.kill()
	}
}

// flush writes c's unsent runs. One goroutine at a time flushes a child,
// so runs reach it in the order of their IDs; those given to it while a
// write is under way go in the next one.
func (s *Sandboxes) flush(c *child) {
	var batch []wireRun
	for {
		s.mu.Lock()
		batch = batch[:0]
		for _, r := range c.unsent {
			r.sent = true
			batch = append(batch, r.wire())
		}
		clear(c.unsent)
		c.unsent = c.unsent[:0]
		if len(batch) == 0 {
			c.flushing = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if err := c.writeRuns(batch); err != nil {
			// Its reader sees the death and gives the runs to others.
			c.kill()
		}
	}
}

// serve reads c's output while holding its reader role (see child.reading):
// for mine, the head of c's queue, until mine's result; for a background
// reader (mine nil), until the head has a caller again or the queue is
// empty.
func (s *Sandboxes) serve(c *child, mine *sandboxRun) {
	for {
		var m wireMessage
		if err := c.dec.Decode(&m); err != nil {
			s.lost(c, false)
			return
		}
		var ok, more bool
		switch {
		case m.Result != nil:
			ok, more = s.finish(c, m.Result, mine)
		case m.Call != nil:
			ok, more = s.hostCall(c, m.Call, mine), true
		}
		if !ok {
			s.lost(c, true)
			return
		}
		if !more {
			return
		}
	}
}

// finish takes the answer to the run at the head of c's queue. ok is false
// for a message that breaks the protocol; more, whether the reader goes on.
func (s *Sandboxes) finish(c *child, wr *wireResult, mine *sandboxRun) (ok, more bool) {
	s.mu.Lock()
	if len(c.queue) == 0 || c.queue[0].id != wr.ID || !c.queue[0].sent {
		s.mu.Unlock()
		return false, false
	}
	r := c.queue[0]
	c.queue[0] = nil
	c.queue = c.queue[1:]
	if wr.Retire {
		// The child exits after this result, without reading further: the
		// runs queued behind go to others.
		s.removeChildLocked(c)
		s.requeueLocked(c)
	} else if len(c.queue) > 0 {
		s.startLocked(c, c.queue[0])
	}
	switch res := wr.Result; {
	case !wr.Dropped:
		if res.Duration == 0 {
			res.Duration = time.Since(r.started)
		}
		s.finishLocked(r, res)
	case r.ctx.Err() != nil:
		s.finishLocked(r, waitAborted(r.ctx))
	default: // the parent asked for no such thing
		s.finishLocked(r, Result{Status: Failed, Error: "executor: sandbox protocol error"})
	}
	more = s.keepReadingLocked(c, mine)
	w := s.dispatchLocked()
	if len(c.queue) == 0 {
		c.lastUsed = time.Now()
		w.reapAt = c.lastUsed.Add(s.config.IdleTimeout)
		s.changed.Broadcast()
	}
	s.mu.Unlock()
	s.do(w)
	return true, more
}

// keepReadingLocked reports whether the reader of c goes on after a
// result, and passes the role on if not: to the caller of the new head,
// or to a background reader if that caller has gone, or to nobody if the
// queue is empty. Holding the role, a run's caller reads its own result,
// without a goroutine in between: that hand-off cost 25 µs a run (84 µs
// against 59 for BenchmarkSandboxRunHello), a thread wake-up on a 2-core
// machine.
func (s *Sandboxes) keepReadingLocked(c *child, mine *sandboxRun) bool {
	if mine != nil && !mine.finished {
		return true
	}
	switch {
	case len(c.queue) == 0:
		c.reading = false
		if c.dead() {
			// Its exit watcher found it being read, and left it to us.
			go s.lost(c, false)
		}
		return false
	case c.queue[0].finished:
		if mine != nil {
			go s.serve(c, nil)
			return false
		}
		return true
	default:
		c.queue[0].lead <- c
		return false
	}
}

// hostCall answers a host call of the run at the head of c's queue: the
// call's caller holds the reader role, so it serves the call itself, as a
// caller always has.
func (s *Sandboxes) hostCall(c *child, call *wireHostCall, mine *sandboxRun) bool {
	s.mu.Lock()
	ok := len(c.queue) > 0 && c.queue[0].id == call.RunID && c.queue[0].sent
	head := ok && c.queue[0] == mine && !mine.finished
	s.mu.Unlock()
	if !ok {
		return false
	}
	reply := wireHostReply{CallID: call.CallID, Error: "the invocation was cancelled"}
	if head {
		reply = serveHostCall(mine.ctx, mine.req.Host, *call)
	}
	if err := c.write(&wireMessage{Reply: &reply}); err != nil {
		c.kill() // the next read reports the death
	}
	return true
}

// lost accounts for a child that ended: died, killed, retired, stopped, or
// broke the protocol. The run at the head of its queue, if it had one, ends
// with the reason; the runs queued behind it go to other children. Its
// reader calls it, or, for a child that nobody reads (it had no runs), the
// goroutine that waits for its exit.
func (s *Sandboxes) lost(c *child, protocolErr bool) {
	c.kill() // make sure: it may have only broken the protocol
	<-c.exited
	s.mu.Lock()
	if c.lost {
		s.mu.Unlock()
		return
	}
	c.lost, c.reading = true, false
	s.removeChildLocked(c)
	var head *sandboxRun
	var started time.Time
	if len(c.queue) > 0 && c.queue[0].sent {
		head, started = c.queue[0], c.queue[0].started
		c.queue = c.queue[1:]
	}
	killed := head != nil && c.killedFor == head
	s.requeueLocked(c)
	w := s.dispatchLocked()
	s.changed.Broadcast()
	s.mu.Unlock()
	s.do(w)
	closeAll([]*os.File{c.in, c.out, c.control})
	defer s.live.Done()
	if head == nil {
		return
	}
	var res Result
	switch {
	case protocolErr:
		res = Result{Status: Failed, Error: "executor: sandbox protocol error"}
	case !killed:
		res = c.diedResult()
	case head.ctx.Err() != nil && !errors.Is(head.ctx.Err(), context.DeadlineExceeded):
		res = Result{Status: Cancelled, Error: fmt.Sprintf("%s: cancelled: %v; the sandbox did not stop within %v and was killed", head.fn.Name, context.Cause(head.ctx), s.config.KillGrace)}
	default:
		res = Result{Status: TimedOut, Limit: LimitTimeout, Error: fmt.Sprintf("%s: timed out; the sandbox did not stop within %v and was killed", head.fn.Name, s.config.KillGrace)}
	}
	res.Duration = time.Since(started)
	s.mu.Lock()
	s.finishLocked(head, res)
	s.mu.Unlock()
}

// exited runs when c's process has exited. Its reader, if it has one,
// sees the end of its output; otherwise nobody would notice.
func (s *Sandboxes) exited(c *child) {
	s.mu.Lock()
	idle := !c.reading
	if idle {
		s.removeChildLocked(c)
	}
	s.mu.Unlock()
	if idle {
		s.lost(c, false)
	}
}

func (s *Sandboxes) removeChildLocked(c *child) {
	if i := slices.Index(s.children, c); i >= 0 {
		s.children = slices.Delete(s.children, i, i+1)
	}
}

// requeueLocked puts the runs queued on c, none of them started, back at
// the front of the shared queue, in order. Those whose callers have gone
// are forgotten.
func (s *Sandboxes) requeueLocked(c *child) {
	var back []*sandboxRun
	for _, r := range c.queue {
		if r.timer != nil {
			r.timer.Stop()
			r.timer = nil
		}
		if r.finished {
			continue
		}
		if r.ctx.Err() != nil {
			// Its caller may be waiting for the head of a queue to notice.
			s.finishLocked(r, waitAborted(r.ctx))
			continue
		}
		r.child, r.id, r.sent, r.started = nil, 0, false, time.Time{}
		back = append(back, r)
	}
	c.queue, c.unsent = nil, nil
	if len(back) > 0 {
		s.pending = append(back, s.pending...)
	}
}

// addChild starts a child and gives it runs.
func (s *Sandboxes) addChild() {
	c, err := s.startChild()
	s.mu.Lock()
	s.starting--
	switch {
	case err != nil:
		// As when Run started children itself: the run that needed it
		// fails, the next one tries again.
		s.logger.Error("executor: cannot start a sandbox process", "error", err)
		if len(s.pending) > 0 {
			r := s.pending[0]
			s.pending = s.pending[1:]
			s.finishLocked(r, Result{Status: Failed, Error: "executor: " + err.Error()})
		}
	case s.closing:
		s.changed.Broadcast()
		s.mu.Unlock()
		c.close() // its exit watcher cleans up
		return
	default:
		c.lastUsed = time.Now()
		s.children = append(s.children, c)
	}
	w := s.dispatchLocked()
	s.changed.Broadcast()
	s.mu.Unlock()
	s.do(w)
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

// reap stops the children that have been idle for IdleTimeout.
func (s *Sandboxes) reap() {
	s.reaperMu.Lock()
	s.reapAt = time.Time{}
	s.reaperMu.Unlock()
	var stop []*child
	var next time.Time
	s.mu.Lock()
	for _, c := range s.children {
		switch {
		case len(c.queue) > 0 || c.reading:
		case time.Since(c.lastUsed) >= s.config.IdleTimeout:
			stop = append(stop, c)
		case next.IsZero() || c.lastUsed.Before(next):
			next = c.lastUsed
		}
	}
	for _, c := range stop {
		s.removeChildLocked(c)
	}
	s.mu.Unlock()
	for _, c := range stop {
		c.close() // its exit watcher cleans up
	}
	if !next.IsZero() {
		s.armReaper(next.Add(s.config.IdleTimeout))
	}
}

// Usage reports how many sandbox processes are running an invocation, out
// of how many may.
func (s *Sandboxes) Usage() (busy, capacity int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.children {
		if len(c.queue) > 0 {
			busy++
		}
	}
	return busy, s.config.Processes
}

// Close stops every child once the runs given to it end; runs no child has
// taken fail. Idempotent.
func (s *Sandboxes) Close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.reaperMu.Lock()
		if s.reaper != nil {
			s.reaper.Stop()
		}
		s.reaperMu.Unlock()
		s.mu.Lock()
		s.closing = true
		for _, r := range s.pending {
			s.finishLocked(r, closedResult)
		}
		s.pending = nil
		for s.busyLocked() {
			s.changed.Wait()
		}
		children := s.children
		s.children = nil
		s.mu.Unlock()
		for _, c := range children {
			c.close()
		}
		s.live.Wait()
	})
}

func (s *Sandboxes) busyLocked() bool {
	if s.starting > 0 || len(s.pending) > 0 {
		return true
	}
	for _, c := range s.children {
		if len(c.queue) > 0 {
			return true
		}
	}
	return false
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
	w := bufio.NewWriter(inW)
	c := &child{
		cmd:     cmd,
		in:      inW,
		out:     outR,
		control: ctlW,
		w:       w,
		enc:     gob.NewEncoder(w),
		dec:     gob.NewDecoder(outR),
		ctlEnc:  gob.NewEncoder(ctlW),
		stderr:  stderr,
		exited:  make(chan struct{}),
		memory:  s.config.MemoryLimit,
		grace:   s.config.KillGrace,
		logger:  s.logger,
	}
	s.live.Add(1)
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
		s.exited(c)
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

// child is one sandbox process. It runs one invocation at a time, in the
// order it was given them, while the parent writes the next ones behind
// it. Its stdin carries runs and host-call replies, written under wmu; its
// stdout results and host calls, read by one goroutine at a time, the one
// holding its reader role (reading); cancels, which must reach it while it
// runs, travel on a third pipe.
//
// The reader role goes with the head of the queue: the goroutine that
// called Run for the running run reads the child's output, serves the
// run's host calls and takes its result, then hands the role to the
// caller of the next run. So a lone run costs what it did before
// pipelining: its caller is woken by the pipe, not by another goroutine.
type child struct {
	cmd     *exec.Cmd
	in      *os.File
	out     *os.File
	control *os.File
	wmu     sync.Mutex
	w       *bufio.Writer
	enc     *gob.Encoder
	dec     *gob.Decoder
	ctlMu   sync.Mutex
	ctlEnc  *gob.Encoder
	stderr  *headBuffer
	exited  chan struct{}
	waitErr error
	memory  int64
	grace   time.Duration
	logger  *slog.Logger

	// Guarded by Sandboxes.mu.
	queue     []*sandboxRun // given to it, in order; queue[0] runs
	unsent    []*sandboxRun // the tail of queue not handed to the writer yet
	flushing  bool          // a goroutine is writing its runs
	nextID    uint64
	lastUsed  time.Time   // when its queue last emptied
	killedFor *sandboxRun // the run whose limit killed it
	// reading is set while a goroutine reads its output or is about to
	// (a lead sent): never while its queue is empty, whenever it is not.
	reading bool
	lost    bool // accounted for by Sandboxes.lost
}

func (c *child) dead() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// writeRuns writes runs in one write.
func (c *child) writeRuns(runs []wireRun) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for i := range runs {
		if err := c.enc.Encode(&wireMessage{Run: &runs[i]}); err != nil {
			return err
		}
	}
	return c.w.Flush()
}

func (c *child) write(m *wireMessage) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.enc.Encode(m); err != nil {
		return err
	}
	return c.w.Flush()
}

func (c *child) cancel(id uint64, reason string) {
	c.ctlMu.Lock()
	defer c.ctlMu.Unlock()
	_ = c.ctlEnc.Encode(&wireCancel{ID: id, Reason: reason})
}

func serveHostCall(ctx context.Context, host Host, call wireHostCall) wireHostReply {
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
// Its reader closes the other pipes.
func (c *child) close() {
	c.wmu.Lock()
	_ = c.in.Close()
	c.wmu.Unlock()
	select {
	case <-c.exited:
	case <-time.After(c.grace):
		c.kill()
		<-c.exited
	}
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
