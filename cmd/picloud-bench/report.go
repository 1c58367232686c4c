package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/picloud/picloud/internal/version"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/picloud/picloud/internal/bench"
)

// distribution is the shape of one latency metric, in milliseconds: more
// than the p50 and p99 rows of the table, so the chart can show the tail.
type distribution struct {
	// Metric is the metric without its quantile, as latency() was given it.
	Metric string `json:"metric"`
	// Baseline is the "scenario metric" of the distribution this one is
	// compared with, if any.
	Baseline string  `json:"baseline,omitempty"`
	Samples  int     `json:"samples"`
	Min      float64 `json:"min_ms"`
	P50      float64 `json:"p50_ms"`
	P90      float64 `json:"p90_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
	Mean     float64 `json:"mean_ms"`
}

func distributionOf(samples bench.Samples, baseline string) distribution {
	d := distribution{Baseline: baseline, Samples: len(samples)}
	if len(samples) == 0 {
		return d
	}
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	d.Min, d.Max = bench.Millis(slices.Min(samples)), bench.Millis(slices.Max(samples))
	d.P50, d.P90, d.P99 = bench.Millis(samples.Quantile(0.50)), bench.Millis(samples.Quantile(0.90)), bench.Millis(samples.Quantile(0.99))
	d.Mean = bench.Millis(sum / time.Duration(len(samples)))
	return d
}

// machine is what the run ran on, as Linux describes it; fields stay empty
// where the system does not say.
type machine struct {
	CPUModel    string `json:"cpu_model,omitempty"`
	CPUCount    int    `json:"cpu_count,omitempty"`
	MemoryBytes int64  `json:"memory_bytes,omitempty"`
	Kernel      string `json:"kernel,omitempty"`
}

// module is the version of a dependency whose behaviour the figures
// depend on.
type module struct {
	Name    string `json:"name"`
	Path    string `json:"path"`
	Version string `json:"version"`
}

// pgSetting is a server setting as SHOW reports it.
type pgSetting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// measuredModules are the dependencies named in the report, in its order;
// one the binary does not link (gopher-lua before the sandbox scenario
// uses it) is left out.
func measuredModules() []struct{ name, path string } {
	return []struct{ name, path string }{
		{"River", "github.com/riverqueue/river"},
		{"go-lua", "github.com/Shopify/go-lua"},
		{"gopher-lua", "github.com/yuin/gopher-lua"},
		{"pgx", "github.com/jackc/pgx/v5"},
		{"huma", "github.com/danielgtaylor/huma/v2"},
	}
}

// reportedSettings are the server settings that move the figures: fsync
// and synchronous_commit set the cost of every commit, shared_buffers
// whether a burn-down stays in memory, max_connections the pool sizes.
func reportedSettings() []string {
	return []string{"fsync", "synchronous_commit", "shared_buffers", "max_connections"}
}

// describe fills in what the run is measured on: machine, versions and
// the server's settings. reportFile (and its chart directory) is left out
// of the commit's dirtiness, since every run rewrites it.
func describe(ctx context.Context, pool *pgxpool.Pool, rep *report, reportFile string) error {
	rep.Machine = readMachine(ctx)
	rep.Commit = commit(ctx, reportFile)
	rep.Modules = modules()
	rep.PostgresSettings = nil
	for _, name := range reportedSettings() {
		var value string
		if err := pool.QueryRow(ctx, "SHOW "+name).Scan(&value); err != nil {
			return fmt.Errorf("read the server setting %s: %w", name, err)
		}
		rep.PostgresSettings = append(rep.PostgresSettings, pgSetting{Name: name, Value: value})
	}
	return nil
}

func readMachine(ctx context.Context) machine {
	var m machine
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel, m.CPUCount = parseCPUInfo(data)
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemoryBytes = parseMemTotal(data)
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	} else if out, err := exec.CommandContext(ctx, "uname", "-r").Output(); err == nil {
		m.Kernel = strings.TrimSpace(string(out))
	}
	return m
}

// parseCPUInfo returns the CPU model and the number of processors. x86
// names the model on every processor; ARM boards such as the Raspberry Pi
// name the board once, at the end.
func parseCPUInfo(data []byte) (model string, count int) {
	fields := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if key == "processor" {
			count++
		}
		if _, seen := fields[key]; !seen {
			fields[key] = value
		}
	}
	for _, key := range []string{"model name", "Model", "Hardware", "cpu model", "cpu"} {
		if v := fields[key]; v != "" {
			return v, count
		}
	}
	return "", count
}

func parseMemTotal(data []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0
		}
		return kb * 1024
	}
	return 0
}

// commit names the source measured as `git describe --always --dirty`
// does, except that the report's own files do not make it dirty: a run
// after a run would otherwise always say so. Without git (or outside a
// checkout) it falls back on what the go command stamped into the binary.
func commit(ctx context.Context, reportFile string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	git := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "git", args...).Output()
		return string(out), err
	}
	if name, err := git("describe", "--always"); err == nil {
		name = strings.TrimSpace(name)
		// The report's paths as git prints them: from the top of the work
		// tree, with slashes. One written outside it matches no change.
		var own []string
		if reportFile != "" {
			top, errTop := git("rev-parse", "--show-toplevel")
			prefix, errPrefix := git("rev-parse", "--show-prefix")
			for _, p := range []string{reportFile, chartDir(reportFile)} {
				switch {
				case !filepath.IsAbs(p) && errPrefix == nil:
					own = append(own, path.Join(filepath.ToSlash(strings.TrimSpace(prefix)), filepath.ToSlash(p)))
				case filepath.IsAbs(p) && errTop == nil:
					if rel, err := filepath.Rel(strings.TrimSpace(top), p); err == nil {
						own = append(own, filepath.ToSlash(rel))
					}
				}
			}
		}
		status, err := git("status", "--porcelain", "--untracked-files=no")
		if err != nil {
			return name
		}
		if dirty(status, own) {
			name += "-dirty"
		}
		return name
	}
	// Outside a checkout: the commit the binary was built from.
	return version.Get().Commit
}

// dirty reports whether `git status --porcelain` lists a change to a file
// other than own ones (files, or directories and everything under them).
func dirty(status string, own []string) bool {
	for line := range strings.Lines(status) {
		line = strings.TrimRight(line, "\n")
		if len(line) < 4 {
			continue
		}
		file := line[3:]
		if _, to, renamed := strings.Cut(file, " -> "); renamed {
			file = to
		}
		if !slices.ContainsFunc(own, func(p string) bool { return file == p || strings.HasPrefix(file, p+"/") }) {
			return true
		}
	}
	return false
}

func modules() []module {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	var ms []module
	for _, want := range measuredModules() {
		for _, dep := range info.Deps {
			if dep.Path != want.path {
				continue
			}
			version := dep.Version
			if dep.Replace != nil {
				version = dep.Replace.Path + " " + dep.Replace.Version
			}
			ms = append(ms, module{Name: want.name, Path: want.path, Version: strings.TrimSpace(version)})
		}
	}
	return ms
}

// chartDir is where the report's charts go: docs/performance.md has its
// charts in docs/performance/.
func chartDir(reportFile string) string {
	return strings.TrimSuffix(reportFile, filepath.Ext(reportFile))
}

// writeReport writes the Markdown report and its charts. Every chart is
// always written, empty if nothing was measured for it, so a chart of an
// earlier run never lingers next to a report that does not match it.
func writeReport(reportFile string, rep report) error {
	dir := chartDir(reportFile)
	if dir == reportFile {
		return fmt.Errorf("report %s: name it with an extension (.md), its charts go in the directory of the same name without it", reportFile)
	}
	charts := renderCharts(rep)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for _, c := range charts {
		file := filepath.Join(dir, c.file)
		if err := os.WriteFile(file, c.svg, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", file, err)
		}
	}
	var md bytes.Buffer
	writeMarkdown(&md, rep, filepath.Base(dir), charts)
	if err := os.WriteFile(reportFile, md.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", reportFile, err)
	}
	return nil
}

// writeMarkdown writes the report; chartDir is the charts' directory
// relative to the report's.
func writeMarkdown(w io.Writer, rep report, chartDir string, charts []chart) {
	run := "full"
	if rep.Settings.Quick {
		run = "quick"
	}
	fmt.Fprintln(w, "# PiCloud performance")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "<!-- Generated by cmd/picloud-bench: edits are overwritten by the next run. -->")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Measured on %s by a %s run of the benchmark harness (%.0f s). "+
		"Regenerate this page and its charts from the repository's root with `task bench` "+
		"(`go run ./cmd/picloud-bench`; `task bench -- --quick` for a run under two minutes with fewer samples); "+
		"the harness also writes every figure as JSON (`--json`).\n",
		rep.Started.UTC().Format("2006-01-02 15:04 MST"), run, rep.Duration)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Each PiCloud figure is measured next to a baseline in the same run (the PostgreSQL operations it is built from, or River alone) "+
		"and the machine may be shared and noisy: read the ratios, not the absolute numbers.")

	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Machine and versions")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| | |")
	fmt.Fprintln(w, "|---|---|")
	row(w, "CPU", cpuDescription(rep))
	row(w, "Memory", memory(rep.Machine.MemoryBytes))
	row(w, "Kernel", orUnknown(rep.Machine.Kernel))
	row(w, "OS/architecture", rep.GOOS+"/"+rep.GOARCH)
	row(w, "Go", rep.GoVersion)
	row(w, "PostgreSQL", rep.Postgres)
	row(w, "PiCloud", orUnknown(rep.Commit))
	for _, m := range rep.Modules {
		row(w, m.Name, fmt.Sprintf("%s (%s)", m.Version, m.Path))
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Configuration")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| | |")
	fmt.Fprintln(w, "|---|---|")
	s := rep.Settings
	row(w, "Run", fmt.Sprintf("%s (`--quick=%t`)", run, s.Quick))
	row(w, "Latency samples", fmt.Sprintf("%d calls one at a time per metric", s.Samples))
	row(w, "Throughput", fmt.Sprintf("%d closed-loop clients for %s", s.Clients, s.ThroughputTime))
	row(w, "Wake", fmt.Sprintf("%d SQL enqueues, %s apart", s.WakeEnqueues, s.WakeSpacing))
	row(w, "Sandbox processes", strconv.Itoa(s.Concurrency))
	row(w, "Server", rep.Server)
	for _, p := range rep.PostgresSettings {
		row(w, "`"+p.Name+"`", p.Value)
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Targets")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "The goals of issue 15, checked against this run.")
	fmt.Fprintln(w)
	writeTargets(w, checkTargets(targets(rep.Settings), rep.Results))

	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Results")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Ratio is the value over its baseline's, measured in the same run.")
	fmt.Fprintln(w)
	writeResults(w, rep.Results)

	if len(charts) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "## Charts")
		for _, c := range charts {
			fmt.Fprintln(w)
			fmt.Fprintf(w, "![%s](%s)\n", c.alt, path.Join(filepath.ToSlash(chartDir), c.file))
		}
	}
}

func row(w io.Writer, name, value string) {
	fmt.Fprintf(w, "| %s | %s |\n", name, cell(value))
}

// cell keeps a value from ending its Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// cpuDescription says what the CPU is and how many of it the harness saw,
// noting when Go may use fewer than the machine has.
func cpuDescription(rep report) string {
	m := rep.Machine
	model := orUnknown(m.CPUModel)
	count := m.CPUCount
	if count == 0 {
		count = rep.CPUs
	}
	s := fmt.Sprintf("%s × %d", model, count)
	if rep.CPUs != 0 && rep.CPUs != count {
		s += fmt.Sprintf(" (%d usable by the harness)", rep.CPUs)
	}
	return s
}

func memory(bytes int64) string {
	if bytes == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.1f GiB", float64(bytes)/(1<<30))
}
