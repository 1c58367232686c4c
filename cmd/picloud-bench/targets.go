package main

import (
	"fmt"
	"io"
	"math"
)

// comparison is how a target's limit bounds a figure; its text is what
// the report shows.
type comparison string

const (
	atMost  comparison = "≤"
	below   comparison = "<"
	atLeast comparison = "≥"
	above   comparison = ">"
)

func (c comparison) holds(v, limit float64) bool {
	switch c {
	case atMost:
		return v <= limit
	case below:
		return v < limit
	case atLeast:
		return v >= limit
	case above:
		return v > limit
	}
	return false
}

// target is one goal of issue 15 on one row of the results, found by its
// scenario and metric exactly as the scenario names them. A row no run
// produced reads "not measured", so a target may name a scenario before it
// exists.
type target struct {
	Goal     string // what is measured, in the words
	Scenario string
	Metric   string
	// OfRatio compares the row's ratio to its baseline, not its value.
	OfRatio bool
	Cmp     comparison
	Limit   float64
	Unit    string // of Limit; ignored when OfRatio
}

// targets are the goals of issue 15 (issue 10's, sharpened). Names built from settings follow the
// scenarios that build them the same way.
func targets(s settings) []target {
	return []target{
		{Goal: "sync /fn/noop latency p50", Scenario: "sync", Metric: "/fn/noop sequential p50", Cmp: atMost, Limit: 1, Unit: "ms"},
		{Goal: "sync /fn/noop latency p99", Scenario: "sync", Metric: "/fn/noop sequential p99", Cmp: atMost, Limit: 5, Unit: "ms"},
		{Goal: "sync /fn/noop throughput", Scenario: "sync", Metric: fmt.Sprintf("/fn/noop throughput, %d clients", s.Clients), Cmp: atLeast, Limit: 3000, Unit: "ops/s"},
		{Goal: "sync /fn/noop throughput vs INSERT+COMMIT", Scenario: "sync", Metric: fmt.Sprintf("/fn/noop throughput, %d clients", s.Clients), OfRatio: true, Cmp: atLeast, Limit: 0.25},
		{Goal: "wake latency p50 vs River alone", Scenario: "wake", Metric: "SQL invoke to Lua start p50", OfRatio: true, Cmp: atMost, Limit: 1},
		{Goal: "wake latency p99 vs River alone", Scenario: "wake", Metric: "SQL invoke to Lua start p99", OfRatio: true, Cmp: atMost, Limit: 1},
		{Goal: "wake after the connections drop p99", Scenario: "reconnect wake", Metric: "connections cut, SQL invoke to Lua start p99", Cmp: atMost, Limit: 1000, Unit: "ms"},
		{Goal: "bulk enqueue from SQL", Scenario: "enqueue", Metric: "picloud.invoke_many, one statement", Cmp: atLeast, Limit: 50000, Unit: "rows/s"},
		{Goal: "SQL burn-down throughput vs River alone", Scenario: "burndown", Metric: "picloud.invoke burn-down", OfRatio: true, Cmp: atLeast, Limit: 0.5},
		{Goal: "idle serve node", Scenario: "idle", Metric: "serve statements/min", Cmp: atMost, Limit: 2, Unit: "statements/min"},
		{Goal: "idle worker node", Scenario: "idle", Metric: "worker statements/min", Cmp: atMost, Limit: 2, Unit: "statements/min"},
	}
}

// targetCheck is a target against one run.
type targetCheck struct {
	target
	Status    string // met, not met, or why it could not be checked
	Value     float64
	ValueUnit string
	found     bool
}

func checkTargets(ts []target, results []result) []targetCheck {
	scenarios := map[string]bool{}
	for _, r := range results {
		scenarios[r.Scenario] = true
	}
	checks := make([]targetCheck, 0, len(ts))
	for _, t := range ts {
		c := targetCheck{target: t, Status: "not measured"}
		i := -1
		for j, r := range results {
			if r.Scenario == t.Scenario && r.Metric == t.Metric {
				i = j
				break
			}
		}
		switch {
		case i < 0 && scenarios[t.Scenario]:
			// The scenario ran but named its rows otherwise: the target
			// table has fallen behind the scenario.
			c.Status = "not measured (scenario ran, no such metric)"
		case i < 0:
		case t.OfRatio && results[i].Baseline == "":
			c.Status = "not measured (no baseline)"
		default:
			r := results[i]
			c.found, c.Value, c.ValueUnit = true, r.Value, r.Unit
			if t.OfRatio {
				c.Value = r.Ratio
			}
			c.Status = "❌ not met"
			if !math.IsNaN(c.Value) && !math.IsInf(c.Value, 0) && t.Cmp.holds(c.Value, t.Limit) {
				c.Status = "✅ met"
			}
		}
		checks = append(checks, c)
	}
	return checks
}

func writeTargets(w io.Writer, checks []targetCheck) {
	fmt.Fprintln(w, "| target | goal | scenario | metric | this run | status |")
	fmt.Fprintln(w, "|---|---|---|---|---:|---|")
	for _, c := range checks {
		goal := fmt.Sprintf("%s %s", c.Cmp, format(c.Limit, c.Unit))
		if c.OfRatio {
			goal = fmt.Sprintf("ratio %s %.2f", c.Cmp, c.Limit)
		}
		value := ""
		if c.found {
			value = format(c.Value, c.ValueUnit)
			if c.OfRatio {
				value = fmt.Sprintf("%.2f", c.Value)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", cell(c.Goal), goal, cell(c.Scenario), cell(c.Metric), value, c.Status)
	}
}
