// Command picloud-bench is PiCloud's reproducible benchmark harness (issue
// 10): it measures the platform on a fresh database of the local
// PostgreSQL, next to the PostgreSQL operations it is built from, in the
// same run, so the ratios hold on a noisy machine. It prints a Markdown
// table, writes the results as JSON and writes the report
// (docs/performance.md and its SVG charts in docs/performance/).
//
//	go run ./cmd/picloud-bench [--quick] [--json FILE] [--report FILE]
//
// The server is DATABASE_URL if set (it must allow CREATE DATABASE), else
// a private cluster started from the installed PostgreSQL binaries in a
// temporary directory.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/picloud/picloud/executor"
)

func main() {
	// Sandbox children are this program re-executed; they must never get
	// past this line.
	executor.RunSandboxIfChild()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := benchmark(logger); err != nil {
		logger.Error("picloud-bench failed", slog.Any("err", err))
		os.Exit(1)
	}
}

func benchmark(logger *slog.Logger) error {
	quick := flag.Bool("quick", false, "shorter runs (under 2 minutes), for a smoke check")
	jsonFile := flag.String("json", "picloud-bench.json", "file to write the results to as JSON; empty writes none")
	reportFile := flag.String("report", "docs/performance.md", "Markdown report to write, with its SVG charts in a directory of the same name without .md; empty writes none")
	concurrency := flag.Int("concurrency", runtime.GOMAXPROCS(0), "invocations a node runs at once (and sandbox processes), as picloud serve --concurrency")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process (API, queue, load generator; not PostgreSQL or the sandbox processes) to this file, for go tool pprof")
	only := flag.String("scenarios", "", "comma-separated scenarios to run (floor, sync, wake, river wake, sandbox, enqueue, burndown, river burndown, scale-out, idle); empty runs all")
	flag.Parse()

	s := settingsFor(*quick)
	s.Concurrency = *concurrency
	if *only != "" {
		s.Only = strings.Split(*only, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("create the CPU profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("start the CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	return run(ctx, logger, s, *jsonFile, *reportFile)
}

// settings size every scenario; quick trades precision at the tail for a
// run under two minutes.
type settings struct {
	Quick          bool          `json:"quick"`
	Samples        int           `json:"samples"`
	Clients        int           `json:"clients"`
	ThroughputTime time.Duration `json:"throughput_ns"`
	WakeEnqueues   int           `json:"wake_enqueues"`
	WakeSpacing    time.Duration `json:"wake_spacing_ns"`
	Concurrency    int           `json:"concurrency"`
	// Only names the scenarios to run; empty runs all.
	Only []string `json:"only,omitempty"`
}

func settingsFor(quick bool) settings {
	s := settings{
		Samples:        2000,
		Clients:        16,
		ThroughputTime: 10 * time.Second,
		WakeEnqueues:   1000,
		WakeSpacing:    5 * time.Millisecond,
		Concurrency:    runtime.GOMAXPROCS(0),
	}
	if quick {
		s.Quick, s.Samples, s.ThroughputTime, s.WakeEnqueues = true, 500, 3*time.Second, 200
	}
	return s
}

// report is what the JSON file holds.
type report struct {
	Started   time.Time `json:"started"`
	Duration  float64   `json:"duration_s"`
	GoVersion string    `json:"go_version"`
	GOOS      string    `json:"goos"`
	GOARCH    string    `json:"goarch"`
	CPUs      int       `json:"cpus"`
	Postgres  string    `json:"postgres"`
	Server    string    `json:"server"`
	Settings  settings  `json:"settings"`
	Results   []result  `json:"results"`

	Machine          machine     `json:"machine"`
	Commit           string      `json:"commit,omitempty"`
	Modules          []module    `json:"modules,omitempty"`
	PostgresSettings []pgSetting `json:"postgres_settings,omitempty"`
}

// result is one row of the table. Baseline is a measurement of the same
// run that the value is compared with; Ratio is value/baseline.
type result struct {
	Scenario      string  `json:"scenario"`
	Metric        string  `json:"metric"`
	Unit          string  `json:"unit"`
	Value         float64 `json:"value"`
	Baseline      string  `json:"baseline,omitempty"`
	BaselineValue float64 `json:"baseline_value,omitempty"`
	Ratio         float64 `json:"ratio,omitempty"`
	// Latency is the distribution behind a latency metric's rows, for the
	// charts; latency() sets it on the p50 row only, so the JSON holds it
	// once.
	Latency        *distribution `json:"latency,omitempty"`
	baselineMetric string
}

func run(ctx context.Context, logger *slog.Logger, s settings, jsonFile, reportFile string) error {
	started := time.Now()
	srv, err := openServer(ctx, logger)
	if err != nil {
		return err
	}
	defer srv.close()
	db, err := srv.freshDatabase(ctx)
	if err != nil {
		return err
	}
	defer db.drop()

	rep := report{
		Started: started.UTC(), GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		CPUs: runtime.NumCPU(), Server: srv.description, Settings: s,
	}
	if err := db.pool.QueryRow(ctx, "SHOW server_version").Scan(&rep.Postgres); err != nil {
		return fmt.Errorf("read the server version: %w", err)
	}
	if err := describe(ctx, db.pool, &rep, reportFile); err != nil {
		return err
	}
	logger.Info("measuring", slog.String("postgres", rep.Postgres), slog.String("server", srv.description), slog.Bool("quick", s.Quick))

	// Idle and scale-out run real picloud processes, built from this tree.
	bin, removeBin, err := buildPicloud(ctx)
	if err != nil {
		return err
	}
	defer removeBin()
	p, err := startPlatform(ctx, db.pool, s.Concurrency)
	if err != nil {
		return err
	}
	defer p.stop()

	var results []result
	for _, sc := range []struct {
		name string
		run  func(context.Context, *platform, settings) ([]result, error)
	}{
		{"floor", floor},
		{"sync", syncHTTP},
		{"wake", wake},
		{"river wake", riverWake},
		{"sandbox", sandbox},
		{"enqueue", enqueue},
		{"burndown", sqlBurndown},
		{"burndown in-process", inProcessBurndown},
		{"river burndown", riverBurndown},
		{"scale-out", bin.scaleOut},
		{"reconnect wake", reconnectWake},
		// Last, when nothing else runs: the nodes' own load is what counts.
		{"idle", bin.idle},
	} {
		if len(s.Only) > 0 && !slices.Contains(s.Only, sc.name) {
			continue
		}
		logger.Info("scenario", slog.String("name", sc.name))
		rs, err := sc.run(ctx, p, s)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", sc.name, err)
		}
		results = append(results, rs...)
	}
	rep.Results = withBaselines(results)
	rep.Duration = time.Since(started).Seconds()

	printTable(os.Stdout, rep)
	if jsonFile != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fmt.Errorf("encode the results: %w", err)
		}
		if err := os.WriteFile(jsonFile, append(data, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", jsonFile, err)
		}
	}
	if reportFile != "" {
		if err := writeReport(reportFile, rep); err != nil {
			return err
		}
		logger.Info("report written", slog.String("file", reportFile))
	}
	return nil
}

// withBaselines fills in each result's baseline from the result of the
// same run it names.
func withBaselines(results []result) []result {
	byName := map[string]float64{}
	for _, r := range results {
		byName[r.Scenario+" "+r.Metric] = r.Value
	}
	for i, r := range results {
		if r.baselineMetric == "" {
			continue
		}
		b, ok := byName[r.baselineMetric]
		if !ok || b == 0 {
			continue
		}
		results[i].Baseline, results[i].BaselineValue, results[i].Ratio = r.baselineMetric, b, r.Value/b
	}
	return results
}

func printTable(w io.Writer, rep report) {
	fmt.Fprintf(w, "\nPiCloud benchmark, %s, PostgreSQL %s (%s), %s/%s, %d CPUs, %d sandboxes, quick=%t, %.1f s\n\n",
		rep.GoVersion, rep.Postgres, rep.Server, rep.GOOS, rep.GOARCH, rep.CPUs, rep.Settings.Concurrency, rep.Settings.Quick, rep.Duration)
	writeResults(w, rep.Results)
	fmt.Fprintln(w, "\nTargets of issue 15:")
	fmt.Fprintln(w)
	writeTargets(w, checkTargets(targets(rep.Settings), rep.Results))
}

// writeResults writes the results as a Markdown table, for the terminal
// and the report alike.
func writeResults(w io.Writer, results []result) {
	fmt.Fprintln(w, "| scenario | metric | value | baseline | ratio |")
	fmt.Fprintln(w, "|---|---|---:|---|---:|")
	for _, r := range results {
		baseline, ratio := "", ""
		if r.Baseline != "" {
			baseline = fmt.Sprintf("%s = %s", r.Baseline, format(r.BaselineValue, r.Unit))
			ratio = fmt.Sprintf("%.2f", r.Ratio)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", cell(r.Scenario), cell(r.Metric), format(r.Value, r.Unit), cell(baseline), ratio)
	}
}

// format gives a value as many digits as it can be trusted with:
// latencies are sampled to the microsecond, rates and counts vary by more
// than a unit from run to run.
func format(v float64, unit string) string {
	switch {
	case unit == "ms" && v < 100:
		return fmt.Sprintf("%.3f %s", v, unit)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f %s", v, unit)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f %s", v, unit)
	default:
		return fmt.Sprintf("%.2f %s", v, unit)
	}
}
