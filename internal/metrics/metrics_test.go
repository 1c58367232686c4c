package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/picloud/picloud/api"
	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/internal/dbtest"
	"github.com/picloud/picloud/internal/platformtest"
	"github.com/picloud/picloud/internal/version"
)

func TestMain(m *testing.M) {
	executor.RunSandboxIfChild()
	os.Exit(dbtest.Main(m))
}

// modes runs as told: ok, fail (a Lua error) or loop (until its 100 ms
// timeout).
const modes = `
function handle(req)
  local mode = (req.payload and req.payload.mode) or (req.query and req.query.mode)
  if mode == "fail" then error("asked to fail") end
  if mode == "loop" then while true do end end
  return "ok"
end`

func call(t *testing.T, method, url string, body any, header ...string) (int, []byte) {
	t.Helper()
	res := platformtest.Call(t, method, url, body, header...)
	return res.Status, res.Body
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	status, body := call(t, http.MethodGet, url+"/metrics", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return families
}

// find returns the family's metric whose labels are exactly labels.
// buildLabels are picloud_build_info's labels for this test binary.
func buildLabels() map[string]string {
	b := version.Get()
	return map[string]string{"version": b.Version, "commit": b.Commit, "go_version": b.GoVersion}
}

func find(t *testing.T, families map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	family, ok := families[name]
	if !ok {
		t.Fatalf("no metric %s in the scrape", name)
	}
	if family.GetHelp() == "" {
		t.Errorf("%s has no HELP text", name)
	}
outer:
	for _, m := range family.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				continue outer
			}
		}
		return m
	}
	t.Fatalf("no %s%v in the scrape; it has %v", name, labels, family.GetMetric())
	return nil
}

// TestScrape runs a known workload and reads it back from /metrics: three
// successes, a failure and a timeout across two functions and two triggers.
func TestScrape(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options{Metrics: true})
	for name, fn := range map[string]map[string]any{
		"ok":    {"source": `function handle(req) return "fine" end`},
		"modes": {"source": modes, "timeout_ms": 100},
	} {
		if status, body := call(t, http.MethodPut, p.URL+"/v1/functions/"+name, fn); status != http.StatusCreated {
			t.Fatalf("deploy %s: %d %s", name, status, body)
		}
	}
	workload := []struct {
		method, path string
		body         any
		status       int
	}{
		{http.MethodGet, "/fn/ok", nil, http.StatusOK},
		{http.MethodGet, "/fn/ok", nil, http.StatusOK},
		{http.MethodPost, "/v1/functions/modes/invocations", map[string]any{"payload": map[string]string{"mode": "ok"}}, http.StatusOK},
		{http.MethodGet, "/fn/modes?mode=fail", nil, http.StatusInternalServerError},
		{http.MethodGet, "/fn/modes?mode=loop", nil, http.StatusGatewayTimeout},
	}
	for _, w := range workload {
		if status, body := call(t, w.method, p.URL+w.path, w.body); status != w.status {
			t.Fatalf("%s %s: %d, want %d: %s", w.method, w.path, status, w.status, body)
		}
	}

	families := scrape(t, p.URL)
	counters := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"picloud_invocations_total", map[string]string{"function": "ok", "status": "succeeded", "trigger": "http"}, 2},
		{"picloud_invocations_total", map[string]string{"function": "modes", "status": "succeeded", "trigger": "api"}, 1},
		{"picloud_invocations_total", map[string]string{"function": "modes", "status": "failed", "trigger": "http"}, 1},
		{"picloud_invocations_total", map[string]string{"function": "modes", "status": "timed_out", "trigger": "http"}, 1},
		{"picloud_sandbox_limit_hits_total", map[string]string{"function": "modes", "limit": "timeout"}, 1},
		{"picloud_listener_reconnects_total", nil, 0},
	}
	for _, c := range counters {
		if got := find(t, families, c.name, c.labels).GetCounter().GetValue(); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := len(families["picloud_invocations_total"].GetMetric()); n != 4 {
		t.Errorf("picloud_invocations_total has %d series, want 4", n)
	}
	if n := len(families["picloud_sandbox_limit_hits_total"].GetMetric()); n != 1 {
		t.Errorf("picloud_sandbox_limit_hits_total has %d series, want 1", n)
	}

	histograms := []struct {
		name     string
		function string
		want     uint64
	}{
		{"picloud_invocation_duration_seconds", "ok", 2},
		{"picloud_invocation_duration_seconds", "modes", 3},
		{"picloud_invocation_queue_seconds", "ok", 2},
		{"picloud_invocation_queue_seconds", "modes", 3},
	}
	for _, h := range histograms {
		got := find(t, families, h.name, map[string]string{"function": h.function}).GetHistogram()
		if got.GetSampleCount() != h.want {
			t.Errorf("%s{function=%q} count = %d, want %d", h.name, h.function, got.GetSampleCount(), h.want)
		}
		if h.name == "picloud_invocation_duration_seconds" && h.function == "modes" && got.GetSampleSum() < 0.1 {
			t.Errorf("%s{function=modes} sum = %v s, want at least the 100 ms timeout", h.name, got.GetSampleSum())
		}
	}

	gauges := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"picloud_invocations_running", nil, 0},
		{"picloud_executor_busy", nil, 0},
		{"picloud_executor_capacity", nil, 2},
		{"picloud_invocations_queued", map[string]string{"state": "due"}, 0},
		{"picloud_invocations_queued", map[string]string{"state": "scheduled"}, 0},
		{"picloud_invocations_queued", map[string]string{"state": "parked"}, 0},
		{"picloud_build_info", buildLabels(), 1},
	}
	for _, g := range gauges {
		if got := find(t, families, g.name, g.labels).GetGauge().GetValue(); got != g.want {
			t.Errorf("%s%v = %v, want %v", g.name, g.labels, got, g.want)
		}
	}
	if got := find(t, families, "picloud_db_pool_max_connections", nil).GetGauge().GetValue(); got < 1 {
		t.Errorf("picloud_db_pool_max_connections = %v", got)
	}
	if got := find(t, families, "picloud_db_pool_acquires_total", nil).GetCounter().GetValue(); got < 5 {
		t.Errorf("picloud_db_pool_acquires_total = %v, want at least one per invocation", got)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := families[name]; !ok {
			t.Errorf("no %s: the runtime and process collectors are missing", name)
		}
	}
}

// TestQueued: the queue gauge tells invocations waiting for their time from
// those waiting for a slot, and the worker gauges see the one running.
func TestQueued(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options{Metrics: true})
	fn := map[string]any{"source": `function handle(req) while true do end end`, "max_concurrency": 1, "timeout_ms": 10000, "max_instructions": 100_000_000_000}
	if status, body := call(t, http.MethodPut, p.URL+"/v1/functions/slow", fn); status != http.StatusCreated {
		t.Fatalf("deploy: %d %s", status, body)
	}
	var ids []int64
	t.Cleanup(func() { // before the platform stops, which would wait for the loops
		for _, id := range ids {
			call(t, http.MethodPost, fmt.Sprintf("%s/v1/invocations/%d/cancel", p.URL, id), nil)
		}
	})
	for _, body := range []map[string]any{
		{"async": true, "run_at": "2100-01-01T00:00:00Z"},
		{"async": true},
		{"async": true},
	} {
		status, res := call(t, http.MethodPost, p.URL+"/v1/functions/slow/invocations", body)
		if status != http.StatusAccepted {
			t.Fatalf("invoke: %d %s", status, res)
		}
		var inv struct{ ID int64 }
		if err := json.Unmarshal(res, &inv); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, inv.ID)
	}
	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"picloud_invocations_running", nil, 1},
		{"picloud_executor_busy", nil, 1},
		{"picloud_invocations_queued", map[string]string{"state": "due"}, 0},
		{"picloud_invocations_queued", map[string]string{"state": "scheduled"}, 1},
		{"picloud_invocations_queued", map[string]string{"state": "parked"}, 1},
	}
	// The second invocation is parked once a worker tried to start it,
	// a moment after the first started.
	var got []float64
	for range 100 {
		families := scrape(t, p.URL)
		got = got[:0]
		for _, w := range want {
			got = append(got, find(t, families, w.name, w.labels).GetGauge().GetValue())
		}
		if got[0] == 1 && got[4] == 1 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i, w := range want {
		if got[i] != w.value {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got[i], w.value)
		}
	}
}

// TestMetricsAuth: on the API address /metrics needs an admin key unless
// the operator made it public.
func TestMetricsAuth(t *testing.T) {
	private := platformtest.Start(t, platformtest.Options{Metrics: true, Auth: true})
	public := platformtest.Start(t, platformtest.Options{Metrics: true, Auth: true, MetricsPublic: true})
	invoke := private.Key(t, "invoke")
	tests := []struct {
		name   string
		url    string
		key    string
		status int
	}{
		{"no key", private.URL, "", http.StatusUnauthorized},
		{"unknown key", private.URL, "pic_" + strings.Repeat("a", 40), http.StatusUnauthorized},
		{"invoke key", private.URL, invoke, http.StatusForbidden},
		{"admin key", private.URL, private.AdminKey, http.StatusOK},
		{"public", public.URL, "", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var header []string
			if tt.key != "" {
				header = []string{"Authorization", "Bearer " + tt.key}
			}
			status, body := call(t, http.MethodGet, tt.url+"/metrics", nil, header...)
			if status != tt.status {
				t.Fatalf("status = %d, want %d: %s", status, tt.status, body)
			}
			if status == http.StatusOK && !bytes.Contains(body, []byte("# HELP picloud_invocations_running")) {
				t.Errorf("not a scrape:\n%s", body)
			}
		})
	}
}

// TestListenerReconnects: a LISTEN connection that the database drops is
// counted once it is back.
func TestListenerReconnects(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options{Metrics: true})
	var killed int
	err := p.Pool.QueryRow(context.Background(), `
		SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query ILIKE 'listen "picloud%'`).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminated %d LISTEN connections (%v), want PiCloud's one", killed, err)
	}
	var got float64
	for range 100 { // the listener reconnects within 250 ms
		got = find(t, scrape(t, p.URL), "picloud_listener_reconnects_total", nil).GetCounter().GetValue()
		if got > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got != 1 {
		t.Errorf("picloud_listener_reconnects_total = %v, want 1", got)
	}
}

// TestHealthServesMetrics: a worker's health address serves /metrics
// without a key, next to its probes.
func TestHealthServesMetrics(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options{Metrics: true, Auth: true})
	srv := httptest.NewServer(api.NewHealth(p.Client, nil, p.Metrics.Handler()))
	t.Cleanup(srv.Close)
	for _, path := range []string{"/metrics", "/healthz"} {
		if status, body := call(t, http.MethodGet, srv.URL+path, nil); status != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, status, body)
		}
	}
}
