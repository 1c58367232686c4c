package executor

import (
	"bufio"
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"sync"
	"time"

	lua "github.com/Shopify/go-lua"
)

// RunSandboxIfChild makes this process a sandbox child, and exits, when
// Sandboxes started it as one; otherwise it returns at once. A program
// that uses Sandboxes calls it first thing in main, and a test binary in
// TestMain, because a child is the same executable started again.
func RunSandboxIfChild() {
	if os.Getenv(childEnv) != "1" {
		return
	}
	control := os.NewFile(3, "control")
	os.Exit(serveChild(pollable(os.Stdin), pollable(os.Stdout), control))
}

// serveChild runs the invocations read from in, one at a time and in the
// order they came, on this goroutine, until in ends. A reader goroutine
// keeps in drained meanwhile: the parent writes the next runs while one
// runs (they wait in a FIFO), and the running one's host-call replies.
// Cancels arrive on control.
func serveChild(in io.Reader, out io.Writer, control io.Reader) int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	memory, _ := strconv.ParseInt(os.Getenv(childMemoryEnv), 10, 64)
	var heapLimit int64
	// mapped is the memory the Go runtime has mapped: it never unmaps its
	// heap, and RLIMIT_DATA counts what is mapped, so a run that used much
	// memory leaves every later run in this child less room than promised
	// (a run with a quarter of the limit live died once earlier runs had
	// used more). A child whose mapping grew past retireAbove exits after
	// its run, and the next run gets a fresh one.
	var mapped []metrics.Sample
	var retireAbove uint64
	if memory > 0 {
		limit := memory
		if raceEnabled {
			// The race detector maps about four bytes of shadow memory per
			// heap byte, and the data limit counts them: scale it, so that
			// race-enabled tests still die near the intended heap size.
			limit = 4*memory + 1<<30
		}
		if err := limitChildMemory(limit); err != nil {
			fmt.Fprintln(os.Stderr, "sandbox: memory limit:", err)
			return 1
		}
		// Collect harder near the limit, and fail a run cleanly at half of
		// it: between two checks a growing table doubles its array while
		// the old one is still alive, and the runtime maps more than it
		// hands out, so the margin has to be wide for the clean error to
		// come before the kernel refuses the runtime more memory.
		debug.SetMemoryLimit(memory * 3 / 4)
		heapLimit = memory / 2
		mapped = []metrics.Sample{{Name: "/memory/classes/total:bytes"}}
		metrics.Read(mapped)
		retireAbove = mapped[0].Value.Uint64() + uint64(memory/2)
	}
	pool := NewPool(Config{Size: 1, HeapLimit: heapLimit, Logger: logger})
	defer pool.Close()
	if os.Getenv(childTestHooksEnv) == "1" {
		pool.extend = addTestHooks
	}

	w := bufio.NewWriter(out)
	c := &childServer{
		w:        w,
		enc:      gob.NewEncoder(w),
		wake:     make(chan struct{}, 1),
		early:    make(map[uint64]bool),
		replies:  make(chan wireHostReply, 1),
		inputEnd: make(chan struct{}),
	}
	go c.readInput(in)
	go c.readCancels(control)
	for {
		run, ctx, ok := c.next()
		if !ok {
			if err := c.inputErr; !errors.Is(err, io.EOF) {
				fmt.Fprintln(os.Stderr, "sandbox:", err)
				return 1
			}
			return 0
		}
		if run.dropped {
			if err := c.send(&wireMessage{Result: &wireResult{ID: run.ID, Dropped: true}}); err != nil {
				return 1
			}
			continue
		}
		req := run.Request
		if run.HasHost {
			req.Host = childHost{c, run.ID}
		}
		res := pool.Run(ctx, run.Function, req, run.Limits)
		c.endRun()
		retire := false
		if mapped != nil {
			metrics.Read(mapped)
			retire = mapped[0].Value.Uint64() > retireAbove
		}
		if err := c.send(&wireMessage{Result: &wireResult{ID: run.ID, Result: res, Retire: retire}}); err != nil {
			return 1 // the parent is gone
		}
		if retire {
			return 0
		}
	}
}

type childServer struct {
	// The loop in serveChild is the only writer of out: results, drops and
	// host calls leave in the order of the runs, and the readers of in and
	// control never block on out, whatever the parent is doing.
	w   *bufio.Writer
	enc *gob.Encoder

	mu       sync.Mutex
	queue    []queuedRun
	wake     chan struct{} // a run was queued, or the input ended
	inputErr error         // why the input ended; io.EOF when it was closed
	lastID   uint64        // of the last run read
	// early holds cancels of runs not read yet: a cancel travels on its own
	// pipe and may overtake its run.
	early     map[uint64]bool
	runID     uint64
	runCancel context.CancelCauseFunc
	runStop   context.CancelFunc

	replies  chan wireHostReply
	inputEnd chan struct{}
	nextCall uint64 // of the running run's goroutine
}

type queuedRun struct {
	wireRun
	read    time.Time // when it arrived; its Deadline counts from here
	dropped bool      // cancelled before it started: only acknowledged
}

// send writes m in one write.
func (c *childServer) send(m *wireMessage) error {
	if err := c.enc.Encode(m); err != nil {
		return err
	}
	return c.w.Flush()
}

// readInput reads runs into the queue and hands replies to the host call
// waiting for one, until in ends.
func (c *childServer) readInput(in io.Reader) {
	dec := gob.NewDecoder(in)
	for {
		var m wireMessage
		err := dec.Decode(&m)
		if err == nil {
			switch {
			case m.Run != nil:
				c.queueRun(queuedRun{wireRun: *m.Run, read: time.Now()})
				continue
			case m.Reply != nil:
				select {
				case c.replies <- *m.Reply:
					continue
				default: // no call is waiting for it
				}
			}
			err = errors.New("protocol error")
		}
		c.mu.Lock()
		c.inputErr = err
		if !errors.Is(err, io.EOF) && c.runCancel != nil {
			c.runCancel(err)
		}
		c.mu.Unlock()
		close(c.inputEnd)
		select {
		case c.wake <- struct{}{}:
		default:
		}
		return
	}
}

func (c *childServer) queueRun(run queuedRun) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastID = run.ID
	if c.early[run.ID] {
		delete(c.early, run.ID)
		run.dropped = true
	}
	c.queue = append(c.queue, run)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// next waits for the next run and makes it the running one, with the
// context its cancel stops. It reports false once the input has ended
// (and, on a clean end, the queue is empty).
func (c *childServer) next() (queuedRun, context.Context, bool) {
	for {
		c.mu.Lock()
		if c.inputErr != nil && (!errors.Is(c.inputErr, io.EOF) || len(c.queue) == 0) {
			c.mu.Unlock()
			return queuedRun{}, nil, false
		}
		if len(c.queue) > 0 {
			run := c.queue[0]
			c.queue[0] = queuedRun{}
			c.queue = c.queue[1:]
			if run.dropped {
				c.mu.Unlock()
				return run, nil, true
			}
			ctx, cancel := context.WithCancelCause(context.Background())
			c.runStop = func() {}
			if run.Deadline > 0 {
				ctx, c.runStop = context.WithDeadline(ctx, run.read.Add(run.Deadline))
			}
			c.runID, c.runCancel = run.ID, cancel
			c.mu.Unlock()
			return run, ctx, true
		}
		c.mu.Unlock()
		<-c.wake
	}
}

func (c *childServer) endRun() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runStop()
	c.runCancel(nil)
	c.runID, c.runCancel, c.runStop = 0, nil, nil
}

// readCancels stops the current run when the parent asks, or marks a
// queued one dropped. A cancel names its run, so one that arrives late
// does not stop the next.
func (c *childServer) readCancels(control io.Reader) {
	dec := gob.NewDecoder(control)
	for {
		var cancel wireCancel
		if err := dec.Decode(&cancel); err != nil {
			return
		}
		c.mu.Lock()
		if c.runID == cancel.ID && c.runCancel != nil {
			c.runCancel(errors.New(cancel.Reason))
		} else if i := slices.IndexFunc(c.queue, func(r queuedRun) bool { return r.ID == cancel.ID }); i >= 0 {
			c.queue[i].dropped = true
		} else if cancel.ID > c.lastID {
			c.early[cancel.ID] = true
		}
		c.mu.Unlock()
	}
}

// childHost forwards a script's host calls to the parent, which holds the
// database connections and the network access the child has not. The run
// is synchronous on the serving goroutine: it waits for the reply, which
// the input reader hands over.
type childHost struct {
	c     *childServer
	runID uint64
}

func (h childHost) Call(ctx context.Context, method string, args json.RawMessage) (json.RawMessage, error) {
	c := h.c
	c.nextCall++
	timeout := time.Minute
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	call := wireHostCall{RunID: h.runID, CallID: c.nextCall, Method: method, Args: args, Timeout: timeout}
	if err := c.send(&wireMessage{Call: &call}); err != nil {
		return nil, fmt.Errorf("sandbox: host call: %w", err)
	}
	var reply wireHostReply
	select {
	case reply = <-c.replies:
	case <-c.inputEnd:
		select {
		case reply = <-c.replies:
		default:
			return nil, errors.New("sandbox: host call: the parent is gone")
		}
	}
	if reply.CallID != call.CallID {
		return nil, errors.New("sandbox: host call: protocol error")
	}
	if reply.Error != "" {
		return nil, errors.New(reply.Error)
	}
	return reply.Result, nil
}

// addTestHooks gives scripts two globals that do what no script can, for
// the tests of the supervisor: block in Go past any deadline, and make the
// process exit. Only a parent with testHooks set enables them.
func addTestHooks(s *state) {
	l := s.l
	l.Field(lua.RegistryIndex, registryKey)
	l.RawGetInt(-1, slotBase)
	l.PushGoFunction(func(l *lua.State) int {
		time.Sleep(time.Duration(lua.CheckNumber(l, 1) * float64(time.Second)))
		return 0
	})
	l.SetField(-2, "test_block")
	l.PushGoFunction(func(l *lua.State) int {
		os.Exit(lua.CheckInteger(l, 1))
		return 0
	})
	l.SetField(-2, "test_exit")
	l.SetTop(0)
}
