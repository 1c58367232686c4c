package executor

import (
	"context"
	"encoding/gob"
	"errors"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
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
