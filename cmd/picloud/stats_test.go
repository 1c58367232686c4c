package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/picloud/picloud/internal/pgcount"
)

// TestPrintIdleJSON: --json gives a program each node's rate and
// statements, and names a node that failed while still reporting the rest.
func TestPrintIdleJSON(t *testing.T) {
	results := []idleResult{
		{role: "worker", total: 6, statements: []pgcount.Statement{{SQL: "-- ping", Count: 4}, {SQL: "SELECT 1", Count: 2}}},
		{role: "api", total: 0},
		{role: "river", err: errors.New("boom")},
	}
	var out bytes.Buffer
	err := printIdleJSON(&out, results, 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "river: boom") {
		t.Errorf("error = %v, want the failed node named", err)
	}
	var got idleReport
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if got.DurationSeconds != 30 || len(got.Nodes) != 3 {
		t.Fatalf("got %+v", got)
	}
	worker := got.Nodes[0]
	if worker.Role != "worker" || worker.Statements != 6 || worker.StatementsPerMin != 12 || len(worker.ByStatement) != 2 ||
		worker.ByStatement[0] != (idleStatement{SQL: "-- ping", Count: 4}) || worker.Error != "" {
		t.Errorf("worker = %+v", worker)
	}
	if api := got.Nodes[1]; api.Role != "api" || api.StatementsPerMin != 0 || api.Error != "" {
		t.Errorf("api = %+v", api)
	}
	if river := got.Nodes[2]; river.Role != "river" || river.Error != "boom" {
		t.Errorf("river = %+v", river)
	}
}
