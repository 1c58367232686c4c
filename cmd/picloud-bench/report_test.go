package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picloud/picloud/internal/bench"
)

// syntheticReport is a run as the harness would record it, without
// PostgreSQL: floor, sync, wake, River and burn-down rows, one idle row
// of two.
func syntheticReport() report {
	s := settingsFor(true)
	spread := func(base time.Duration, n int) bench.Samples {
		samples := make(bench.Samples, n)
		for i := range samples {
			samples[i] = base + time.Duration(i*i)*time.Microsecond/50
		}
		return samples
	}
	var rs []result
	rs = append(rs, latency("floor", "select1", spread(20*time.Microsecond, 500), "")...)
	rs = append(rs, latency("floor", "insert_commit", spread(150*time.Microsecond, 500), "floor select1")...)
	rs = append(rs, latency("floor", "notify_to_listen", spread(90*time.Microsecond, 500), "floor select1")...)
	rs = append(rs, result{Scenario: "floor", Metric: "insert_commit throughput, 16 clients", Unit: "ops/s", Value: 9876})
	rs = append(rs, latency("sync", "/fn/noop sequential", spread(400*time.Microsecond, 500), "floor insert_commit")...)
	rs = append(rs, result{Scenario: "sync", Metric: "/fn/noop throughput, 16 clients", Unit: "ops/s", Value: 3456,
		baselineMetric: "floor insert_commit throughput, 16 clients"})
	rs = append(rs, latency("wake", "SQL invoke to Lua start", spread(2*time.Millisecond, 200), "floor notify_to_listen")...)
	rs = append(rs, latency("river", "wake insert to work, defaults, idle", spread(50*time.Millisecond, 200), "")...)
	rs = append(rs,
		result{Scenario: "river", Metric: "InsertManyFast insert, one COPY", Unit: "rows/s", Value: 400000},
		result{Scenario: "river", Metric: "no-op burn-down, tuned", Unit: "ops/s", Value: 20000},
		result{Scenario: "burndown", Metric: "picloud.invoke insert, one statement", Unit: "rows/s", Value: 150000,
			baselineMetric: "river InsertManyFast insert, one COPY"},
		result{Scenario: "burndown", Metric: "picloud.invoke burn-down", Unit: "ops/s", Value: 15000,
			baselineMetric: "river no-op burn-down, tuned"},
		result{Scenario: "idle", Metric: "serve statements/min", Unit: "statements/min", Value: 1},
	)
	return report{
		Started: time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC), Duration: 95.5,
		GoVersion: "go1.26.8", GOOS: "linux", GOARCH: "amd64", CPUs: 2,
		Postgres: "15.8", Server: "private cluster, fsync off", Settings: s,
		Results: withBaselines(rs),
		Machine: machine{CPUModel: "AMD EPYC", CPUCount: 2, MemoryBytes: 24 << 30, Kernel: "6.18.44"},
		Commit:  "bb52ac4-dirty",
		Modules: []module{{Name: "River", Path: "github.com/riverqueue/river", Version: "v0.51.2"}},
		PostgresSettings: []pgSetting{
			{Name: "fsync", Value: "off"}, {Name: "synchronous_commit", Value: "on"},
			{Name: "shared_buffers", Value: "128MB"}, {Name: "max_connections", Value: "100"},
		},
	}
}

func TestWriteReport(t *testing.T) {
	rep := syntheticReport()
	file := filepath.Join(t.TempDir(), "docs", "performance.md")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeReport(file, rep); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	md := string(data)
	for _, want := range []string{
		"`task bench`", "`go run ./cmd/picloud-bench`", "2026-03-14",
		"| CPU | AMD EPYC × 2 |", "| PostgreSQL | 15.8 |", "| PiCloud | bb52ac4-dirty |", "| River | v0.51.2",
		"| Run | quick", "| `fsync` | off |", "| `max_connections` | 100 |",
		"| scenario | metric | value | baseline | ratio |",
		"| sync | /fn/noop sequential p50 | ", "| sync | /fn/noop sequential p99 | ",
		"| target | goal |",
		// 3456/s beats 3,000/s and is 0.35 of INSERT+COMMIT's 9,876/s; a
		// 2 ms wake p50 is worse than its baseline; the burn-down reaches
		// 0.75 of River's; the idle worker ran not.
		"| sync /fn/noop throughput | ≥ 3000 ops/s | sync | /fn/noop throughput, 16 clients | 3456 ops/s | ✅ met |",
		"| sync /fn/noop throughput vs INSERT+COMMIT | ratio ≥ 0.25 | sync | /fn/noop throughput, 16 clients | 0.35 | ✅ met |",
		"| wake latency p50 vs River alone | ratio ≤ 1.00 | wake | SQL invoke to Lua start p50 | ",
		"| ratio ≥ 0.50 | burndown | picloud.invoke burn-down | 0.75 | ✅ met |",
		"| idle | serve statements/min | 1.00 statements/min | ✅ met |",
		"| idle | worker statements/min |  | not measured (scenario ran, no such metric) |",
		"![", "](performance/latency.svg)", "](performance/throughput.svg)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if !strings.Contains(md, "❌ not met") {
		t.Errorf("the wake target should be missed:\n%s", md)
	}

	for _, c := range renderCharts(rep) {
		svg, err := os.ReadFile(filepath.Join(filepath.Dir(file), "performance", c.file))
		if err != nil {
			t.Fatal(err)
		}
		counts := parseSVG(t, c.file, svg)
		if counts["svg"] != 1 || counts["title"] == 0 || counts["rect"] < 3 || counts["text"] < 10 {
			t.Errorf("%s: unexpected elements %v", c.file, counts)
		}
		if !bytes.Contains(svg, []byte("2026-03-14")) || !bytes.Contains(svg, []byte("AMD EPYC")) {
			t.Errorf("%s: the title names neither the date nor the machine", c.file)
		}
	}
}

// TestChartsDeterministic: the same report gives the same bytes, so a
// regenerated report only changes where the figures did.
func TestChartsDeterministic(t *testing.T) {
	a, b := renderCharts(syntheticReport()), renderCharts(syntheticReport())
	for i := range a {
		if !bytes.Equal(a[i].svg, b[i].svg) {
			t.Errorf("%s differs between two renderings of one report", a[i].file)
		}
	}
	var m1, m2 bytes.Buffer
	writeMarkdown(&m1, syntheticReport(), "performance", a)
	writeMarkdown(&m2, syntheticReport(), "performance", b)
	if m1.String() != m2.String() {
		t.Error("the Markdown differs between two renderings of one report")
	}
}

func TestLatencyChartMarks(t *testing.T) {
	rep := syntheticReport()
	svg := latencyChart(rep)
	counts := parseSVG(t, "latency.svg", svg)
	// Six distributions, three of them only another's baseline: sync and
	// wake each with its baseline, and River's wake, five rows, each with
	// a p50 dot and a max ring, plus the legend's two.
	if got, want := counts["circle"], 5*2+2; got != want {
		t.Errorf("latency chart has %d circles, want %d", got, want)
	}
	for _, want := range []string{"sync /fn/noop sequential", "vs floor insert_commit", "milliseconds, log scale", ">0.01<", ">100<"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("latency chart lacks %q", want)
		}
	}
}

// TestThroughputChartScale: rates a hundredfold apart go on a log scale,
// so the smallest bar still shows; close ones on a linear one.
func TestThroughputChartScale(t *testing.T) {
	rep := syntheticReport()
	svg := throughputChart(rep)
	counts := parseSVG(t, "throughput.svg", svg)
	// Six rates, three of them only another's baseline: three bars, each
	// with its baseline, plus the legend's two swatches and the
	// background.
	if got, want := counts["rect"], 6+2+1; got != want {
		t.Errorf("throughput chart has %d rects, want %d", got, want)
	}
	if !bytes.Contains(svg, []byte("per second, log scale")) || !bytes.Contains(svg, []byte(">1M<")) {
		t.Errorf("rates from 3456/s to 400000/s should be on a log scale up to 1M:\n%s", svg)
	}
	var close []result
	for _, r := range rep.Results {
		if r.Unit == "ops/s" && r.Scenario != "burndown" {
			close = append(close, r)
		}
	}
	rep.Results = close
	if svg := throughputChart(rep); !bytes.Contains(svg, []byte("per second, linear scale")) {
		t.Errorf("rates within a factor of 20 should be on a linear scale:\n%s", svg)
	}
}

func TestChartsWithoutResults(t *testing.T) {
	rep := syntheticReport()
	rep.Results = nil
	for _, c := range renderCharts(rep) {
		parseSVG(t, c.file, c.svg)
		if !bytes.Contains(c.svg, []byte("was measured in this run")) {
			t.Errorf("%s does not say it is empty", c.file)
		}
	}
	var md bytes.Buffer
	writeMarkdown(&md, rep, "performance", nil)
	if strings.Count(md.String(), "| not measured |") != len(targets(rep.Settings)) {
		t.Errorf("every target should read not measured:\n%s", md.String())
	}
}

func TestCheckTargets(t *testing.T) {
	results := []result{
		{Scenario: "a", Metric: "p50", Unit: "ms", Value: 0.4},
		{Scenario: "b", Metric: "rate", Unit: "rows/s", Value: 900, Baseline: "river rate", BaselineValue: 1000, Ratio: 0.9},
		{Scenario: "c", Metric: "rate", Unit: "rows/s", Value: 900},
	}
	checks := checkTargets([]target{
		{Scenario: "a", Metric: "p50", Cmp: atMost, Limit: 0.5},
		{Scenario: "a", Metric: "p50", Cmp: below, Limit: 0.4},
		{Scenario: "b", Metric: "rate", OfRatio: true, Cmp: atLeast, Limit: 1},
		{Scenario: "c", Metric: "rate", OfRatio: true, Cmp: atLeast, Limit: 1},
		{Scenario: "c", Metric: "renamed", Cmp: above, Limit: 1},
		{Scenario: "d", Metric: "rate", Cmp: above, Limit: 1},
	}, results)
	want := []string{"✅ met", "❌ not met", "❌ not met", "not measured (no baseline)", "not measured (scenario ran, no such metric)", "not measured"}
	for i, c := range checks {
		if c.Status != want[i] {
			t.Errorf("target %d: %q, want %q", i, c.Status, want[i])
		}
	}
}

func TestParseProc(t *testing.T) {
	model, n := parseCPUInfo([]byte("processor\t: 0\nmodel name\t: AMD EPYC\n\nprocessor\t: 1\nmodel name\t: AMD EPYC\n"))
	if model != "AMD EPYC" || n != 2 {
		t.Errorf("x86 cpuinfo: %q × %d", model, n)
	}
	model, n = parseCPUInfo([]byte("processor\t: 0\nBogoMIPS\t: 108.00\n\nprocessor\t: 1\n\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"))
	if model != "Raspberry Pi 4 Model B Rev 1.4" || n != 2 {
		t.Errorf("Raspberry Pi cpuinfo: %q × %d", model, n)
	}
	if got := parseMemTotal([]byte("MemTotal:       24683652 kB\nMemFree: 1 kB\n")); got != 24683652*1024 {
		t.Errorf("MemTotal: %d", got)
	}
}

// parseSVG checks that svg is well-formed XML and counts its elements.
func parseSVG(t *testing.T, name string, svg []byte) map[string]int {
	t.Helper()
	counts := map[string]int{}
	d := xml.NewDecoder(bytes.NewReader(svg))
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s is not XML: %v\n%s", name, err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok {
			counts[se.Name.Local]++
		}
	}
	return counts
}

func TestDirty(t *testing.T) {
	own := []string{"docs/performance.md", "docs/performance"}
	for _, c := range []struct {
		status string
		want   bool
	}{
		{"", false},
		{" M docs/performance.md\n M docs/performance/latency.svg\n", false},
		{" M docs/performance.md\n M go.mod\n", true},
		{"R  old.go -> docs/performance/x.svg\n", false},
		{" M docs/performance.mdx\n", true},
	} {
		if got := dirty(c.status, own); got != c.want {
			t.Errorf("dirty(%q) = %t, want %t", c.status, got, c.want)
		}
	}
}
