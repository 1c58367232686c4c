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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The sandbox children of these tests are this test binary, started again.
func TestMain(m *testing.M) {
	RunSandboxIfChild()
	os.Exit(m.Run())
}

func newTestSandboxes(t testing.TB, config SandboxConfig) *Sandboxes {
	t.Helper()
	if config.Logger == nil {
		config.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := NewSandboxes(config)
	if err != nil {
		t.Fatal(err)
	}
	s.testHooks = true
	t.Cleanup(s.Close)
	return s
}

// childPIDs lists the process IDs of the live children that take runs.
func (s *Sandboxes) childPIDs() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var pids []int
	for _, c := range s.children {
		if !c.dead() {
			pids = append(pids, c.cmd.Process.Pid)
		}
	}
	return pids
}

func runIn(t testing.TB, s *Sandboxes, src string, limits Limits) Result {
	t.Helper()
	if limits.Timeout == 0 {
		limits.Timeout = 20 * time.Second
	}
	return s.Run(context.Background(), Function{Name: "t", Version: 1, Source: src}, Request{Method: "GET"}, limits)
}

func TestSandboxRunsLikeThePool(t *testing.T) {
	s := newTestSandboxes(t, SandboxConfig{Processes: 1})
	for _, name := range []string{"hello", "echo", "error", "loop"} {
		fn := exampleFunction(t, name)
		req := Request{Trigger: "http", Method: "POST", Path: "/x", Query: map[string]string{"name": "Ada"}, Headers: map[string]string{"content-type": "application/json"}, Body: []byte(`{"a":1}`)}
		want := newTestPool(t, 1).Run(context.Background(), fn, req, Limits{Instructions: 2_000_000})
		got := s.Run(context.Background(), fn, req, Limits{Instructions: 2_000_000})
		if got.Status != want.Status || string(got.Value) != string(want.Value) || string(got.Response.Body) != string(want.Response.Body) ||
			got.Error != want.Error || len(got.Logs) != len(want.Logs) {
			t.Errorf("%s: sandbox %+v, pool %+v", name, got, want)
		}
	}
}

// TestSandboxMemoryBombs: no allocation a script makes takes the platform
// down. The in-VM check ends gradual growth cleanly; what outruns it kills
// one child, the run fails (and must not be retried), and the next run gets
// a new child.
func TestSandboxMemoryBombs(t *testing.T) {
	s := newTestSandboxes(t, SandboxConfig{Processes: 1, MemoryLimit: 96 << 20})
	tests := []struct {
		name string
		src  string
		want []string // any of these in the error
	}{
		{"doubling concatenation", `function handle() local s = "xxxxxxxx" for i = 1, 40 do s = s .. s end return #s end`,
			[]string{"ran out of memory", "memory limit exceeded", "too large"}},
		{"growing table", `function handle() local t = {} for i = 1, 1e9 do t[i] = {i} end end`,
			[]string{"memory limit exceeded", "ran out of memory"}},
		{"string.rep", `function handle() return #string.rep("x", 1e10) end`,
			[]string{"too large"}},
		{"table of long strings", `function handle() local t = {} for i = 1, 1e6 do t[i] = string.rep("y", 1e4) .. i end end`,
			[]string{"memory limit exceeded", "ran out of memory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runIn(t, s, tt.src, Limits{Instructions: 1 << 50})
			matched := false
			for _, w := range tt.want {
				matched = matched || strings.Contains(res.Error, w)
			}
			if res.Status != Failed || !matched {
				t.Fatalf("got %s %q, want failed with one of %q", res.Status, res.Error, tt.want)
			}
			if strings.Contains(res.Error, "ran out of memory") && !res.NoRetry {
				t.Errorf("a run that killed its sandbox is retryable")
			}
			// A library refusing a huge string is an ordinary error, not
			// the sandbox's limit.
			wantLimit := LimitMemory
			if strings.Contains(res.Error, "too large") {
				wantLimit = ""
			}
			if res.Limit != wantLimit {
				t.Errorf("Limit = %q, want %q", res.Limit, wantLimit)
			}
			if after := runIn(t, s, `function handle() return "alive" end`, Limits{}); after.Status != Succeeded || string(after.Value) != `"alive"` {
				t.Errorf("the next run: %s %q", after.Status, after.Error)
			}
		})
	}
}

func TestSandboxLimits(t *testing.T) {
	s := newTestSandboxes(t, SandboxConfig{Processes: 1, KillGrace: 300 * time.Millisecond})

	t.Run("timeout", func(t *testing.T) {
		res := runIn(t, s, `function handle() while true do end end`, Limits{Timeout: 200 * time.Millisecond, Instructions: 1 << 50})
		if res.Status != TimedOut || strings.Contains(res.Error, "killed") || res.Limit != LimitTimeout {
			t.Errorf("got %s %q (limit %q), want timed_out from the hook, child kept", res.Status, res.Error, res.Limit)
		}
	})
	t.Run("uninterruptible call is killed", func(t *testing.T) {
		// Like a long table.sort, test_block runs in Go, where the hook
		// cannot interrupt it; the parent kills the child after the grace.
		start := time.Now()
		res := runIn(t, s, `function handle() test_block(60) end`, Limits{Timeout: 200 * time.Millisecond})
		if res.Status != TimedOut || !strings.Contains(res.Error, "killed") || res.Limit != LimitTimeout {
			t.Errorf("got %s %q (limit %q)", res.Status, res.Error, res.Limit)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("took %v", took)
		}
		if after := runIn(t, s, `function handle() return 1 end`, Limits{}); after.Status != Succeeded {
			t.Errorf("the next run: %s %q", after.Status, after.Error)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(context.Background())
		time.AfterFunc(100*time.Millisecond, func() { cancel(errors.New("stop now")) })
		res := s.Run(ctx, Function{Name: "t", Version: 1, Source: `function handle() while true do end end`}, Request{}, Limits{Timeout: 30 * time.Second, Instructions: 1 << 50})
		if res.Status != Cancelled || !strings.Contains(res.Error, "stop now") {
			t.Errorf("got %s %q", res.Status, res.Error)
		}
	})
	t.Run("child dies", func(t *testing.T) {
		res := runIn(t, s, `function handle() test_exit(3) end`, Limits{})
		if res.Status != Failed || !res.NoRetry || !strings.Contains(res.Error, "died") || !strings.Contains(res.Error, "exit status 3") {
			t.Errorf("got %s %q", res.Status, res.Error)
		}
		if after := runIn(t, s, `function handle() return 1 end`, Limits{}); after.Status != Succeeded {
			t.Errorf("the next run: %s %q", after.Status, after.Error)
		}
	})
}

func TestSandboxConcurrency(t *testing.T) {
	s := newTestSandboxes(t, SandboxConfig{Processes: 2})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			src := `function handle(req) return req.query.i end`
			res := s.Run(context.Background(), Function{Name: "t", Version: 1, Source: src}, Request{Query: map[string]string{"i": strconv.Itoa(i)}}, Limits{})
			if res.Status != Succeeded || string(res.Value) != `"`+strconv.Itoa(i)+`"` {
				t.Errorf("run %d: %s %s %q", i, res.Status, res.Value, res.Error)
			}
		})
	}
	wg.Wait()
}

// BenchmarkSandboxRunHello is BenchmarkRunHello across the process
// boundary: the difference is what isolation costs per call (two pipe
// writes, gob encoding, two context switches).
func BenchmarkSandboxRunHello(b *testing.B) {
	s := newTestSandboxes(b, SandboxConfig{Processes: 1})
	fn := exampleFunction(b, "hello")
	req := Request{Trigger: "http", Method: "GET", Path: "/", Query: map[string]string{"name": "bench"}, Headers: map[string]string{"accept": "*/*"}}
	ctx := context.Background()
	if res := s.Run(ctx, fn, req, Limits{}); res.Status != Succeeded {
		b.Fatal(res.Error)
	}
	b.ReportAllocs()
	for b.Loop() {
		if res := s.Run(ctx, fn, req, Limits{}); res.Status != Succeeded {
			b.Fatal(res.Error)
		}
	}
}

// BenchmarkSandboxRunParallel is the queue layer's load: many more
// goroutines calling Run (16 per GOMAXPROCS, 32 on the 2-core development
// machine) than there are children (2). runs/s is the throughput of the
// whole pool; ns/op is its inverse, not the latency of one run.
func BenchmarkSandboxRunParallel(b *testing.B) {
	for _, bench := range []struct {
		name string
		fn   Function
		req  Request
	}{
		{"return1", Function{Name: "one", Version: 1, Source: `function handle() return 1 end`}, Request{Method: "GET"}},
		{"hello", exampleFunction(b, "hello"), Request{Trigger: "http", Method: "GET", Path: "/", Query: map[string]string{"name": "bench"}, Headers: map[string]string{"accept": "*/*"}}},
	} {
		b.Run(bench.name, func(b *testing.B) {
			s := newTestSandboxes(b, SandboxConfig{Processes: 2})
			ctx := context.Background()
			// Start both children and compile the function in each.
			var wg sync.WaitGroup
			for range 64 {
				wg.Go(func() {
					if res := s.Run(ctx, bench.fn, bench.req, Limits{}); res.Status != Succeeded {
						b.Error(res.Error)
					}
				})
			}
			wg.Wait()
			b.SetParallelism(16)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if res := s.Run(ctx, bench.fn, bench.req, Limits{}); res.Status != Succeeded {
						b.Error(res.Error)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
		})
	}
}

// TestSandboxIdleChildrenStop: an idle child gives its memory back and the
// next run starts a new one.
func TestSandboxIdleChildrenStop(t *testing.T) {
	s := newTestSandboxes(t, SandboxConfig{Processes: 2, IdleTimeout: 200 * time.Millisecond})
	if res := runIn(t, s, `function handle() return 1 end`, Limits{}); res.Status != Succeeded {
		t.Fatal(res.Error)
	}
	live := func() int { return len(s.childPIDs()) }
	if n := live(); n != 1 {
		t.Fatalf("%d live children after one run, want 1", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for live() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle child was never stopped")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if res := runIn(t, s, `function handle() return 2 end`, Limits{}); res.Status != Succeeded || string(res.Value) != "2" {
		t.Errorf("after the reap: %s %q", res.Status, res.Error)
	}
}

// queuedOn counts the runs written to children and not answered yet: the
// one each runs and those waiting in its pipe.
func (s *Sandboxes) queuedOn() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.children {
		for _, r := range c.queue {
			if r.sent {
				n++
			}
		}
	}
	return n
}

// waitQueued waits until n runs are in children's pipes.
func waitQueued(t *testing.T, s *Sandboxes, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.queuedOn() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d runs queued on children, want %d", s.queuedOn(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// runAsync starts a run of src and returns a channel for its result.
func runAsync(ctx context.Context, s *Sandboxes, src string, req Request, limits Limits) <-chan Result {
	out := make(chan Result, 1)
	go func() {
		out <- s.Run(ctx, Function{Name: "t", Version: 1, Source: src}, req, limits)
	}()
	return out
}

const echoI = `function handle(req) return req.query.i end`

func reqI(i int) Request { return Request{Query: map[string]string{"i": strconv.Itoa(i)}} }

func checkEcho(t *testing.T, i int, res Result) {
	t.Helper()
	if res.Status != Succeeded || string(res.Value) != `"`+strconv.Itoa(i)+`"` {
		t.Errorf("run %d: %s %s %q", i, res.Status, res.Value, res.Error)
	}
}

// TestSandboxPipelineManyCallers: many more callers than children, as the
// queue layer makes them, all get their own results, and no more children
// start than configured.
func TestSandboxPipelineManyCallers(t *testing.T) {
	s := newTestSandboxes(t, SandboxConfig{Processes: 2})
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			for j := range 5 {
				n := i*10 + j
				checkEcho(t, n, s.Run(context.Background(), Function{Name: "t", Version: 1, Source: echoI}, reqI(n), Limits{}))
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			if busy, capacity := s.Usage(); busy > 2 || capacity != 2 {
				t.Errorf("Usage() = %d, %d", busy, capacity)
			}
			time.Sleep(time.Millisecond)
		}
	})
	wg.Wait()
	if n := len(s.childPIDs()); n > 2 {
		t.Errorf("%d children", n)
	}
}

// TestSandboxPipelineHeadEnds: however the run a child is running ends,
// the runs queued behind it in its pipe run normally, on another child if
// that one is gone.
func TestSandboxPipelineHeadEnds(t *testing.T) {
	tests := []struct {
		name   string
		config SandboxConfig
		src    string
		limits Limits
		cancel time.Duration // cancel the head after this long
		want   Status
		errs   []string // any of these in the head's error
		noKill bool     // the child survives
	}{
		{name: "exits", src: `function handle() test_block(0.2) test_exit(3) end`,
			want: Failed, errs: []string{"died", "exit status 3"}},
		{name: "runs out of memory", config: SandboxConfig{MemoryLimit: 96 << 20},
			src:    `function handle() test_block(0.2) local s = "xxxxxxxx" for i = 1, 40 do s = s .. s end return #s end`,
			limits: Limits{Instructions: 1 << 50},
			want:   Failed, errs: []string{"ran out of memory", "memory limit exceeded", "too large"}},
		{name: "killed after its timeout", config: SandboxConfig{KillGrace: 200 * time.Millisecond},
			src: `function handle() test_block(60) end`, limits: Limits{Timeout: 300 * time.Millisecond},
			want: TimedOut, errs: []string{"did not stop within 200ms and was killed"}},
		{name: "killed after a cancel", config: SandboxConfig{KillGrace: 200 * time.Millisecond},
			src: `function handle() test_block(60) end`, cancel: 300 * time.Millisecond,
			want: Cancelled, errs: []string{"stop now; the sandbox did not stop within 200ms and was killed"}},
		{name: "cancelled", src: `function handle() while true do end end`, limits: Limits{Instructions: 1 << 50}, cancel: 300 * time.Millisecond,
			want: Cancelled, errs: []string{"cancelled: stop now"}, noKill: true},
		{name: "times out", src: `function handle() while true do end end`, limits: Limits{Timeout: 300 * time.Millisecond, Instructions: 1 << 50},
			want: TimedOut, errs: []string{"timed out after 300ms"}, noKill: true},
		{name: "retires", config: SandboxConfig{MemoryLimit: 96 << 20},
			src:  `function handle() test_block(0.2) local s = ("x"):rep(16e6) local t = {s:upper(), s:lower()} return #t[1] + #t[2] end`,
			want: Succeeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.config.Processes, tt.config.Pipeline = 1, 16
			s := newTestSandboxes(t, tt.config)
			s.headAge = time.Minute // queue behind the slow head
			checkEcho(t, 0, s.Run(context.Background(), Function{Name: "t", Version: 1, Source: echoI}, reqI(0), Limits{}))
			pid := s.childPIDs()[0]

			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			if tt.cancel > 0 {
				time.AfterFunc(tt.cancel, func() { cancel(errors.New("stop now")) })
			}
			if tt.limits.Timeout == 0 {
				tt.limits.Timeout = 20 * time.Second
			}
			head := runAsync(ctx, s, tt.src, Request{}, tt.limits)
			waitQueued(t, s, 1)
			var queued []<-chan Result
			for i := 1; i <= 5; i++ {
				queued = append(queued, runAsync(context.Background(), s, echoI, reqI(i), Limits{Timeout: 20 * time.Second}))
			}
			waitQueued(t, s, 6) // all in the child's pipe before the head ends

			res := <-head
			matched := len(tt.errs) == 0
			for _, e := range tt.errs {
				matched = matched || strings.Contains(res.Error, e)
			}
			if res.Status != tt.want || !matched {
				t.Errorf("head: %s %q, want %s with one of %q", res.Status, res.Error, tt.want, tt.errs)
			}
			if strings.Contains(res.Error, "died") && !res.NoRetry {
				t.Errorf("head: a run that killed its child is retryable")
			}
			for i, q := range queued {
				checkEcho(t, i+1, <-q)
			}
			pids := s.childPIDs()
			if kept := len(pids) == 1 && pids[0] == pid; kept != tt.noKill {
				t.Errorf("child kept: %v, want %v", kept, tt.noKill)
			}
		})
	}
}

// TestSandboxPipelineNotBehindSlow: a run is not queued behind one that
// has been running for a while, which may go on for long, when it can
// wait for any child to be free instead.
func TestSandboxPipelineNotBehindSlow(t *testing.T) {
	s := newTestSandboxes(t, SandboxConfig{Processes: 2})
	s.headAge = 50 * time.Millisecond
	var wg sync.WaitGroup
	for i := range 2 { // start both children
		wg.Go(func() {
			checkEcho(t, i, s.Run(context.Background(), Function{Name: "t", Version: 1, Source: `function handle(req) test_block(0.1) return req.query.i end`}, reqI(i), Limits{}))
		})
	}
	wg.Wait()
	if n := len(s.childPIDs()); n != 2 {
		t.Fatalf("%d children", n)
	}
	slow := runAsync(context.Background(), s, `function handle() test_block(2) return "slow" end`, Request{}, Limits{Timeout: 20 * time.Second})
	waitQueued(t, s, 1)
	time.Sleep(100 * time.Millisecond) // the slow run is now older than headAge
	start := time.Now()
	for i := range 8 {
		wg.Go(func() {
			checkEcho(t, i, s.Run(context.Background(), Function{Name: "t", Version: 1, Source: `function handle(req) test_block(0.01) return req.query.i end`}, reqI(i), Limits{}))
		})
	}
	wg.Wait()
	if took := time.Since(start); took > time.Second {
		t.Errorf("8 short runs took %v beside a slow one", took)
	}
	if res := <-slow; res.Status != Succeeded {
		t.Errorf("slow: %s %q", res.Status, res.Error)
	}
}

// TestSandboxPipelineQueuedTimeouts: a run's timeout counts from when its
// child starts it, not while it waits behind another; a ctx deadline is
// the caller's, and counts all along.
func TestSandboxPipelineQueuedTimeouts(t *testing.T) {
	s := newTestSandboxes(t, SandboxConfig{Processes: 1, Pipeline: 16, KillGrace: 100 * time.Millisecond})
	s.headAge = time.Minute // queue behind the slow head
	checkEcho(t, 0, s.Run(context.Background(), Function{Name: "t", Version: 1, Source: echoI}, reqI(0), Limits{}))
	pid := s.childPIDs()[0]

	busy := runAsync(context.Background(), s, `function handle() test_block(0.3) return "busy" end`, Request{}, Limits{Timeout: 5 * time.Second})
	waitQueued(t, s, 1)
	// 200 ms of its own, behind 300 ms of another's, and a kill grace of
	// 100 ms: counted from the queueing, the child would be killed.
	short := runAsync(context.Background(), s, `function handle() return "short" end`, Request{}, Limits{Timeout: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	late := runAsync(ctx, s, echoI, reqI(2), Limits{Timeout: 5 * time.Second})
	after := runAsync(context.Background(), s, echoI, reqI(3), Limits{Timeout: 5 * time.Second})

	if res := <-late; res.Status != TimedOut || res.Limit != LimitTimeout || !strings.Contains(res.Error, "waiting for a free Lua state") {
		t.Errorf("ctx deadline while queued: %s %q (limit %q)", res.Status, res.Error, res.Limit)
	} else if took := time.Since(start); took > 250*time.Millisecond {
		t.Errorf("ctx deadline while queued: returned after %v", took)
	}
	if res := <-busy; res.Status != Succeeded || string(res.Value) != `"busy"` {
		t.Errorf("busy: %s %q", res.Status, res.Error)
	}
	if res := <-short; res.Status != Succeeded || string(res.Value) != `"short"` {
		t.Errorf("short timeout, queued: %s %q", res.Status, res.Error)
	}
	checkEcho(t, 3, <-after)
	if pids := s.childPIDs(); len(pids) != 1 || pids[0] != pid {
		t.Errorf("the child was replaced: %v, was %d", pids, pid)
	}
}

// TestSandboxPipelineCancelQueued: a cancel of a run waiting in a child's
// pipe returns at once, and neither stops nor kills what the child runs.
func TestSandboxPipelineCancelQueued(t *testing.T) {
	s := newTestSandboxes(t, SandboxConfig{Processes: 1, Pipeline: 16, KillGrace: 100 * time.Millisecond})
	s.headAge = time.Minute // queue behind the slow head
	checkEcho(t, 0, s.Run(context.Background(), Function{Name: "t", Version: 1, Source: echoI}, reqI(0), Limits{}))
	pid := s.childPIDs()[0]

	head := runAsync(context.Background(), s, `function handle() test_block(0.5) return "head" end`, Request{}, Limits{Timeout: 5 * time.Second})
	waitQueued(t, s, 1)
	ctx, cancel := context.WithCancelCause(context.Background())
	cancelled := runAsync(ctx, s, `function handle() return "must not run" end`, Request{}, Limits{Timeout: 5 * time.Second})
	waitQueued(t, s, 2)
	behind := runAsync(context.Background(), s, echoI, reqI(2), Limits{Timeout: 5 * time.Second})
	waitQueued(t, s, 3)
	start := time.Now()
	cancel(errors.New("changed my mind"))
	if res := <-cancelled; res.Status != Cancelled || !strings.Contains(res.Error, "changed my mind") || res.Duration != 0 {
		t.Errorf("cancelled while queued: %s %q in %v", res.Status, res.Error, res.Duration)
	} else if took := time.Since(start); took > 200*time.Millisecond {
		t.Errorf("cancelled while queued: returned after %v", took)
	}
	if res := <-head; res.Status != Succeeded || string(res.Value) != `"head"` {
		t.Errorf("head: %s %q", res.Status, res.Error)
	}
	checkEcho(t, 2, <-behind)
	if pids := s.childPIDs(); len(pids) != 1 || pids[0] != pid {
		t.Errorf("the child was replaced: %v, was %d", pids, pid)
	}
	// The drop is acknowledged when the child comes to it.
	for deadline := time.Now().Add(10 * time.Second); s.queuedOn() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d runs still queued", s.queuedOn())
		}
	}
}

// mapHost answers kv.get with its own value, and counts its calls.
type mapHost struct {
	value string
	calls atomic.Int64
}

func (h *mapHost) Call(ctx context.Context, method string, args json.RawMessage) (json.RawMessage, error) {
	h.calls.Add(1)
	if method != "kv.get" {
		return nil, fmt.Errorf("unexpected %s", method)
	}
	return json.RawMessage(`{"found":true,"value":"` + h.value + `"}`), nil
}

// TestSandboxPipelineHostCalls: each run's host calls reach its own
// caller's Host, while other runs wait in the same pipe.
func TestSandboxPipelineHostCalls(t *testing.T) {
	s := newTestSandboxes(t, SandboxConfig{Processes: 2})
	src := `function handle() local a = kv.get("x") local b = kv.get("y") return a .. "/" .. b end`
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			h := &mapHost{value: strconv.Itoa(i)}
			res := s.Run(context.Background(), Function{Name: "t", Version: 1, Source: src}, Request{Host: h}, Limits{})
			if want := fmt.Sprintf(`"%d/%d"`, i, i); res.Status != Succeeded || string(res.Value) != want || h.calls.Load() != 2 {
				t.Errorf("run %d: %s %s %q, %d calls", i, res.Status, res.Value, res.Error, h.calls.Load())
			}
		})
	}
	wg.Wait()
}

// TestSandboxPipelineClose: Close lets the runs given to children end, and
// fails the others; nobody waits forever.
func TestSandboxPipelineClose(t *testing.T) {
	s := newTestSandboxes(t, SandboxConfig{Processes: 1, Pipeline: 2})
	checkEcho(t, 0, s.Run(context.Background(), Function{Name: "t", Version: 1, Source: echoI}, reqI(0), Limits{}))
	var results []<-chan Result
	for i := range 6 {
		results = append(results, runAsync(context.Background(), s, `function handle(req) test_block(0.05) return req.query.i end`, reqI(i), Limits{Timeout: 5 * time.Second}))
	}
	waitQueued(t, s, 2)
	s.Close()
	succeeded := 0
	for i, ch := range results {
		switch res := <-ch; {
		case res.Status == Succeeded:
			checkEcho(t, i, res)
			succeeded++
		case res.Status != Failed || res.Error != errClosed.Error():
			t.Errorf("run %d: %s %q", i, res.Status, res.Error)
		}
	}
	if succeeded < 2 {
		t.Errorf("%d runs succeeded; the 2 in the child's pipe must", succeeded)
	}
	if res := runIn(t, s, echoI, Limits{}); res.Status != Failed || res.Error != errClosed.Error() {
		t.Errorf("after Close: %s %q", res.Status, res.Error)
	}
}

// TestSandboxChildEarlyCancel: a cancel travels on its own pipe and may
// reach the child before the run it names; the child then drops the run
// when it arrives, and runs the others in order.
func TestSandboxChildEarlyCancel(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctlR, ctlW := io.Pipe()
	exit := make(chan int, 1)
	go func() { exit <- serveChild(inR, outW, ctlR) }()
	enc, dec, ctl := gob.NewEncoder(inW), gob.NewDecoder(outR), gob.NewEncoder(ctlW)
	if err := ctl.Encode(&wireCancel{ID: 2, Reason: "early"}); err != nil {
		t.Fatal(err)
	}
	for id := uint64(1); id <= 3; id++ {
		run := wireRun{ID: id, Function: Function{Name: "t", Version: 1, Source: `function handle() return 1 end`}}
		if err := enc.Encode(&wireMessage{Run: &run}); err != nil {
			t.Fatal(err)
		}
	}
	for id := uint64(1); id <= 3; id++ {
		var m wireMessage
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		if m.Result == nil || m.Result.ID != id || m.Result.Dropped != (id == 2) || !m.Result.Dropped && m.Result.Result.Status != Succeeded {
			t.Errorf("answer %d: %+v", id, m.Result)
		}
	}
	inW.Close()
	if code := <-exit; code != 0 {
		t.Errorf("exit code %d", code)
	}
	ctlW.Close()
}
