package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	lua "github.com/Shopify/go-lua"
	glua "github.com/yuin/gopher-lua"

	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/internal/bench"
)

// fibSource is the CPU-heavy reference: naive recursion, so the time goes
// to calls and arithmetic in the VM, not to libraries. fib is local in
// every runtime so that none of them pays for a global lookup the others
// do not.
const fibSource = `local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
function handle() return fib(25) end`

// fib25 is what handle returns in fibSource.
const fib25 = 75025

// fibLimits let fib(25) finish in the executor on a slow, shared machine
// (it takes a few million VM instructions, well inside the defaults, but
// the point is to time it, not the limits).
func fibLimits() executor.Limits {
	return executor.Limits{Timeout: time.Minute, Instructions: 1 << 40}
}

// sandboxSizes bounds the sandbox scenario.
type sandboxSizes struct {
	rounds    int           // interleaved rounds of per-call averages
	roundTime time.Duration // how long each trivial-call variant runs per round
	fibRounds int           // most fib(25) calls per runtime, interleaved
	// fibTime ends the fib(25) rounds early, after at least minFibRounds,
	// when the machine is so busy that they would take much longer than
	// planned.
	fibTime time.Duration
}

const minFibRounds = 3

// sandboxSizesFor keeps the scenario to a few seconds. Many short rounds
// spread the other users' load more evenly over the variants than a few
// long ones. fib(25) takes some 30 ms on an idle core and twice that when
// the machine is busy, and varies by a third from one call to the next: a
// median of several calls is needed for a stable ratio.
func sandboxSizesFor(s settings) sandboxSizes {
	if s.Quick {
		return sandboxSizes{rounds: 9, roundTime: 20 * time.Millisecond, fibRounds: 5, fibTime: 3 * time.Second}
	}
	return sandboxSizes{rounds: 15, roundTime: 40 * time.Millisecond, fibRounds: 11, fibTime: 5 * time.Second}
}

// sandbox measures what PiCloud adds to running Lua: the per-call cost of
// the executor (in this process, and in the sandbox processes serve uses)
// on a trivial function next to a bare go-lua call, and the speed of
// CPU-heavy Lua next to gopher-lua, the other pure-Go Lua, as reference.
// It calls the executor directly: no HTTP, no queue, no database.
func sandbox(ctx context.Context, _ *platform, s settings) ([]result, error) {
	return measureSandbox(ctx, s.Samples, sandboxSizesFor(s))
}

func measureSandbox(ctx context.Context, samples int, sizes sandboxSizes) ([]result, error) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	pool := executor.NewPool(executor.Config{Size: 1, Logger: logger})
	defer pool.Close()
	sandboxes, err := executor.NewSandboxes(executor.SandboxConfig{Processes: 1, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("start sandboxes: %w", err)
	}
	defer sandboxes.Close()

	trivial, err := trivialCalls(ctx, pool, sandboxes, samples, sizes)
	if err != nil {
		return nil, err
	}
	fib, err := fibCalls(ctx, pool, sandboxes, sizes)
	if err != nil {
		return nil, err
	}
	return append(trivial, fib...), nil
}

// variant is one way of running the same Lua.
type variant struct {
	metric   string
	baseline string // metric of the same scenario compared with; empty for none
	op       func() error
}

func trivialCalls(ctx context.Context, pool *executor.Pool, sandboxes *executor.Sandboxes, samples int, sizes sandboxSizes) ([]result, error) {
	bare, err := goLuaHandle(noopSource, nil)
	if err != nil {
		return nil, err
	}
	gopher, err := gopherLuaHandle(noopSource)
	if err != nil {
		return nil, err
	}
	defer gopher.close()
	fn := executor.Function{Name: "noop", Version: 1, Source: noopSource}
	// The request the HTTP API would build for GET /fn/noop, so the
	// executor converts what it converts on a real call.
	req := executor.Request{Trigger: "http", Method: "GET", Path: "/", Query: map[string]string{}, Headers: map[string]string{"accept": "*/*"}}
	inProcess := executorCall(ctx, pool.Run, fn, req, executor.Limits{}, "")
	inSandbox := executorCall(ctx, sandboxes.Run, fn, req, executor.Limits{}, "")

	const base = "trivial call, go-lua bare"
	variants := []variant{
		{base, "", func() error { _, err := bare(); return err }},
		{"trivial call, gopher-lua bare", base, func() error { _, err := gopher.call(); return err }},
		{"trivial call, executor in-process", base, inProcess},
		{"trivial call, executor sandbox process", base, inSandbox},
	}
	// The first calls start the sandbox process and fill the executor's
	// chunk caches; a running node has paid for both long before.
	for _, v := range variants {
		if _, err := bench.Sequential(ctx, 20, v.op); err != nil {
			return nil, fmt.Errorf("warm up %s: %w", v.metric, err)
		}
	}
	perRound := make([][]time.Duration, len(variants))
	// Rounds alternate the variants so that a burst of load from the
	// other users of the machine lands on all of them, not on one.
	for range sizes.rounds {
		for i, v := range variants {
			d, err := perCall(ctx, sizes.roundTime, v.op)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", v.metric, err)
			}
			perRound[i] = append(perRound[i], d)
		}
	}
	var rs []result
	for i, v := range variants {
		r := result{Scenario: "sandbox", Metric: v.metric + ", mean", Unit: "µs", Value: micros(median(perRound[i]))}
		if v.baseline != "" {
			r.baselineMetric = "sandbox " + v.baseline + ", mean"
		}
		rs = append(rs, r)
	}

	// Distributions of the executor paths, where one call takes long
	// enough for its own clock reading to be negligible.
	inProcessSamples, err := bench.Sequential(ctx, samples, inProcess)
	if err != nil {
		return nil, fmt.Errorf("executor in-process latency: %w", err)
	}
	inSandboxSamples, err := bench.Sequential(ctx, samples, inSandbox)
	if err != nil {
		return nil, fmt.Errorf("executor sandbox latency: %w", err)
	}
	rs = append(rs, microLatency("trivial call, executor in-process", inProcessSamples, "")...)
	rs = append(rs, microLatency("trivial call, executor sandbox process", inSandboxSamples, "sandbox trivial call, executor in-process")...)
	return rs, nil
}

func fibCalls(ctx context.Context, pool *executor.Pool, sandboxes *executor.Sandboxes, sizes sandboxSizes) ([]result, error) {
	bare, err := goLuaHandle(fibSource, nil)
	if err != nil {
		return nil, err
	}
	// The executor checks its limits from a count hook every 1000 VM
	// instructions; the same hook doing nothing isolates what having one
	// costs go-lua.
	hooked, err := goLuaHandle(fibSource, func(*lua.State, lua.Debug) {})
	if err != nil {
		return nil, err
	}
	gopher, err := gopherLuaHandle(fibSource)
	if err != nil {
		return nil, err
	}
	defer gopher.close()
	fn := executor.Function{Name: "fib", Version: 1, Source: fibSource}
	want := fmt.Sprint(fib25)
	const base = "fib(25), gopher-lua"
	variants := []variant{
		{base, "", returns(gopher.call)},
		{"fib(25), go-lua bare", base, returns(bare)},
		{"fib(25), go-lua bare + count hook", "fib(25), go-lua bare", returns(hooked)},
		{"fib(25), executor in-process", base, executorCall(ctx, pool.Run, fn, executor.Request{}, fibLimits(), want)},
		{"fib(25), executor sandbox process", "fib(25), executor in-process", executorCall(ctx, sandboxes.Run, fn, executor.Request{}, fibLimits(), want)},
	}
	// The sandbox process spends its CPU time in the child, out of this
	// process's account: it has wall-clock time only.
	const inProcess = 4
	_, haveCPU := processCPU()
	wall := make([][]time.Duration, len(variants))
	cpu := make([][]time.Duration, inProcess)
	start := time.Now()
	// Round 0 calls each once first: compiling, caches, the sandbox process.
	for round := range sizes.fibRounds + 1 {
		if round > minFibRounds && time.Since(start) > sizes.fibTime {
			break
		}
		for i, v := range variants {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			cpu0, _ := processCPU()
			d, err := bench.Time(v.op)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", v.metric, err)
			}
			cpu1, _ := processCPU()
			if round == 0 {
				continue
			}
			wall[i] = append(wall[i], d)
			if i < inProcess {
				cpu[i] = append(cpu[i], cpu1-cpu0)
			}
		}
	}
	var rs []result
	for i, v := range variants {
		r := result{Scenario: "sandbox", Metric: v.metric, Unit: "ms", Value: millis(median(wall[i]))}
		if v.baseline != "" {
			r.baselineMetric = "sandbox " + v.baseline
		}
		rs = append(rs, r)
	}
	// On a machine shared with other work, wall-clock time counts the
	// moments the scheduler gave the core to someone else; CPU time does
	// not, and gives steadier ratios between the in-process runtimes.
	if haveCPU {
		for i, v := range variants[:inProcess] {
			r := result{Scenario: "sandbox", Metric: v.metric + ", CPU time", Unit: "ms", Value: millis(median(cpu[i]))}
			if v.baseline != "" {
				r.baselineMetric = "sandbox " + v.baseline + ", CPU time"
			}
			rs = append(rs, r)
		}
	}
	return rs, nil
}

// returns turns a call returning a number into an operation that fails
// unless the number is fib(25).
func returns(call func() (float64, error)) func() error {
	return func() error {
		got, err := call()
		if err != nil {
			return err
		}
		if got != fib25 {
			return fmt.Errorf("fib(25) = %v, want %d", got, fib25)
		}
		return nil
	}
}

// executorCall returns an operation that runs fn through run (a Pool's or
// a Sandboxes' Run) and fails unless it succeeds, with value as its JSON
// result when value is set.
func executorCall(ctx context.Context, run func(context.Context, executor.Function, executor.Request, executor.Limits) executor.Result,
	fn executor.Function, req executor.Request, limits executor.Limits, value string,
) func() error {
	return func() error {
		res := run(ctx, fn, req, limits)
		if res.Status != executor.Succeeded {
			return fmt.Errorf("%s: %s: %s", fn.Name, res.Status, res.Error)
		}
		if value != "" && string(res.Value) != value {
			return fmt.Errorf("%s returned %s, want %s", fn.Name, res.Value, value)
		}
		return nil
	}
}

// goLuaHandle loads source once into a bare go-lua state (no libraries, no
// sandbox) and returns a call of its handle with no arguments. A non-nil
// hook is installed as a count hook every 1000 instructions, the
// executor's hookInterval.
func goLuaHandle(source string, hook lua.Hook) (func() (float64, error), error) {
	l := lua.NewState()
	if err := lua.DoString(l, source); err != nil {
		return nil, fmt.Errorf("go-lua: load: %w", err)
	}
	if hook != nil {
		lua.SetDebugHook(l, hook, lua.MaskCount, 1000)
	}
	return func() (float64, error) {
		l.Global("handle")
		if err := l.ProtectedCall(0, 1, 0); err != nil {
			l.SetTop(0)
			return 0, fmt.Errorf("go-lua: %w", err)
		}
		n, _ := l.ToNumber(-1)
		l.Pop(1)
		return n, nil
	}, nil
}

// gopherLua is a gopher-lua state with source loaded.
type gopherLua struct {
	l      *glua.LState
	handle glua.LValue
}

func gopherLuaHandle(source string) (*gopherLua, error) {
	l := glua.NewState(glua.Options{SkipOpenLibs: true})
	if err := l.DoString(source); err != nil {
		l.Close()
		return nil, fmt.Errorf("gopher-lua: load: %w", err)
	}
	return &gopherLua{l: l, handle: l.GetGlobal("handle")}, nil
}

func (g *gopherLua) call() (float64, error) {
	if err := g.l.CallByParam(glua.P{Fn: g.handle, NRet: 1, Protect: true}); err != nil {
		return 0, fmt.Errorf("gopher-lua: %w", err)
	}
	v := g.l.Get(-1)
	g.l.Pop(1)
	if n, ok := v.(glua.LNumber); ok {
		return float64(n), nil
	}
	return 0, nil
}

func (g *gopherLua) close() { g.l.Close() }

// perCall runs op for about d and returns the mean time of one call. The
// clock is read every few calls only: a bare go-lua call takes a few
// hundred nanoseconds, a clock reading tens.
func perCall(ctx context.Context, d time.Duration, op func() error) (time.Duration, error) {
	const every = 32
	start := time.Now()
	n := 0
	for {
		if err := op(); err != nil {
			return 0, err
		}
		n++
		if n%every != 0 {
			continue
		}
		if elapsed := time.Since(start); elapsed >= d {
			return elapsed / time.Duration(n), nil
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return sorted[len(sorted)/2]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// microLatency is latency in microseconds: bench.Millis rounds to whole
// microseconds, too coarse for an in-process call.
func microLatency(metric string, samples bench.Samples, baseline string) []result {
	var rs []result
	for _, q := range []struct {
		name string
		q    float64
	}{{"p50", 0.50}, {"p99", 0.99}} {
		r := result{Scenario: "sandbox", Metric: metric + " " + q.name, Unit: "µs", Value: micros(samples.Quantile(q.q))}
		if baseline != "" {
			r.baselineMetric = baseline + " " + q.name
		}
		rs = append(rs, r)
	}
	return rs
}
