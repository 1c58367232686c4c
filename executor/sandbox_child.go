package executor

import (
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

// serveChild runs the invocations read from in, one at a time, on this
// goroutine, until in ends; cancels arrive on control.
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

	c := &childServer{enc: gob.NewEncoder(out), dec: gob.NewDecoder(in)}
	go c.readCancels(control)
	for {
		var m wireMessage
		if err := c.dec.Decode(&m); err != nil {
			if !errors.Is(err, io.EOF) {
				fmt.Fprintln(os.Stderr, "sandbox:", err)
				return 1
			}
			return 0
		}
		if m.Run == nil {
			fmt.Fprintln(os.Stderr, "sandbox: expected a run")
			return 1
		}
		run := *m.Run
		ctx, cancel := context.WithCancelCause(context.Background())
		c.setRunning(run.ID, cancel)
		req := run.Request
		if run.HasHost {
			req.Host = childHost{c}
		}
		res := pool.Run(ctx, run.Function, req, run.Limits)
		c.setRunning(0, nil)
		cancel(nil)
		retire := false
		if mapped != nil {
			metrics.Read(mapped)
			retire = mapped[0].Value.Uint64() > retireAbove
		}
		if err := c.enc.Encode(&wireMessage{Result: &wireResult{ID: run.ID, Result: res, Retire: retire}}); err != nil {
			return 1 // the parent is gone
		}
		if retire {
			return 0
		}
	}
}

type childServer struct {
	enc      *gob.Encoder
	dec      *gob.Decoder
	nextCall uint64

	mu        sync.Mutex
	runID     uint64
	runCancel context.CancelCauseFunc
}

func (c *childServer) setRunning(id uint64, cancel context.CancelCauseFunc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runID, c.runCancel = id, cancel
}

// readCancels stops the current run when the parent asks. A cancel names
// its run, so one that arrives late does not stop the next.
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
		}
		c.mu.Unlock()
	}
}

// childHost forwards a script's host calls to the parent, which holds the
// database connections and the network access the child has not. The run
// is synchronous on the serving goroutine, so the call owns the pipes until
// its reply arrives.
type childHost struct{ c *childServer }

func (h childHost) Call(ctx context.Context, method string, args json.RawMessage) (json.RawMessage, error) {
	c := h.c
	c.nextCall++
	timeout := time.Minute
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	call := wireHostCall{CallID: c.nextCall, Method: method, Args: args, Timeout: timeout}
	if err := c.enc.Encode(&wireMessage{Call: &call}); err != nil {
		return nil, fmt.Errorf("sandbox: host call: %w", err)
	}
	var m wireMessage
	if err := c.dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("sandbox: host call: %w", err)
	}
	if m.Reply == nil || m.Reply.CallID != call.CallID {
		return nil, errors.New("sandbox: host call: protocol error")
	}
	if m.Reply.Error != "" {
		return nil, errors.New(m.Reply.Error)
	}
	return m.Reply.Result, nil
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
