package tracing_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/picloud/picloud/internal/dbtest"
	"github.com/picloud/picloud/internal/platformtest"
	"github.com/picloud/picloud/internal/tracing"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

func TestConfigured(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"nothing set", nil, false},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true},
		{"SDK disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, false},
		{"no traces exporter", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tracing.Configured(func(k string) string { return tt.env[k] }); got != tt.want {
				t.Errorf("Configured = %v, want %v", got, tt.want)
			}
		})
	}
}

// callerTrace is the trace a client sends in its traceparent header.
const (
	callerTraceID    = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID     = "00f067aa0ba902b7"
	callerTraceParnt = "00-" + callerTraceID + "-" + callerSpanID + "-01"
)

type answer struct {
	status int
	header http.Header
	id     int64
}

func request(t *testing.T, method, url string, body any, traceParent string) answer {
	t.Helper()
	var header []string
	if traceParent != "" {
		header = []string{"Traceparent", traceParent}
	}
	res := platformtest.Call(t, method, url, body, header...)
	if res.Status >= 300 {
		t.Fatalf("%s %s: %d %s", method, url, res.Status, res.Body)
	}
	a := answer{status: res.Status, header: res.Header}
	if id := res.Header.Get("X-Invocation-Id"); id != "" {
		a.id, _ = strconv.ParseInt(id, 10, 64)
	} else {
		var inv struct{ ID int64 }
		_ = json.Unmarshal(res.Body, &inv)
		a.id = inv.ID
	}
	return a
}

// waitForSpans returns the exported spans once every name is among them:
// the worker ends its spans after the caller has its answer.
func waitForSpans(t *testing.T, exporter *tracetest.InMemoryExporter, names ...string) map[string]tracetest.SpanStub {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		byName := map[string]tracetest.SpanStub{}
		for _, s := range exporter.GetSpans() {
			byName[s.Name] = s
		}
		missing := ""
		for _, n := range names {
			if _, ok := byName[n]; !ok {
				missing = n
			}
		}
		if missing == "" {
			return byName
		}
		if time.Now().After(deadline) {
			t.Fatalf("no span %q; have %v", missing, byName)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func attr(s tracetest.SpanStub, key string) attribute.Value {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func rowTraceParent(t *testing.T, p *platformtest.Platform, id int64) string {
	t.Helper()
	var tp *string
	if err := p.Pool.QueryRow(context.Background(), `SELECT trace_parent FROM picloud.invocations WHERE id = $1`, id).Scan(&tp); err != nil {
		t.Fatal(err)
	}
	if tp == nil {
		return ""
	}
	return *tp
}

// TestTrace: one trace runs from the HTTP request through the invocation
// row to the worker's attempt and the executor's run, continuing the
// caller's trace when it sent a traceparent.
func TestTrace(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	p := platformtest.Start(t, platformtest.Options{TracerProvider: provider})
	request(t, http.MethodPut, p.URL+"/v1/functions/hello", map[string]string{"source": `function handle(req) return "hi" end`}, "")

	tests := []struct {
		name        string
		method      string
		path        string
		body        any
		traceParent string
		route       string
		trigger     string
	}{
		{"fn", http.MethodGet, "/fn/hello", nil, "", "GET /fn/{name}", "http"},
		{"fn with traceparent", http.MethodPost, "/fn/hello/sub", map[string]int{"n": 1}, callerTraceParnt, "POST /fn/{name}/{rest...}", "http"},
		{"invoke", http.MethodPost, "/v1/functions/hello/invocations", map[string]any{}, "", "POST /v1/functions/{name}/invocations", "api"},
		{"invoke with traceparent", http.MethodPost, "/v1/functions/hello/invocations", map[string]any{}, callerTraceParnt, "POST /v1/functions/{name}/invocations", "api"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exporter.Reset()
			res := request(t, tt.method, p.URL+tt.path, tt.body, tt.traceParent)
			spans := waitForSpans(t, exporter, tt.route, "picloud.enqueue", "picloud.attempt", "picloud.executor.run")
			server, enqueue, attempt, run := spans[tt.route], spans["picloud.enqueue"], spans["picloud.attempt"], spans["picloud.executor.run"]

			traceID := server.SpanContext.TraceID()
			for _, s := range []tracetest.SpanStub{enqueue, attempt, run} {
				if s.SpanContext.TraceID() != traceID {
					t.Errorf("%s is in trace %s, the request in %s", s.Name, s.SpanContext.TraceID(), traceID)
				}
			}
			links := []struct {
				child, parent tracetest.SpanStub
				remote        bool // the parent is known from the row, not in-process
			}{
				{enqueue, server, false},
				{attempt, enqueue, true},
				{run, attempt, false},
			}
			for _, l := range links {
				if l.child.Parent.SpanID() != l.parent.SpanContext.SpanID() || l.child.Parent.IsRemote() != l.remote {
					t.Errorf("%s's parent is %s (remote %v), want %s (%s, remote %v)", l.child.Name, l.child.Parent.SpanID(),
						l.child.Parent.IsRemote(), l.parent.SpanContext.SpanID(), l.parent.Name, l.remote)
				}
			}
			if tt.traceParent != "" {
				if traceID.String() != callerTraceID || server.Parent.SpanID().String() != callerSpanID || !server.Parent.IsRemote() {
					t.Errorf("request span continues %s/%s, want the caller's %s/%s", traceID, server.Parent.SpanID(), callerTraceID, callerSpanID)
				}
			} else if server.Parent.IsValid() {
				t.Errorf("request span has parent %s without a traceparent header", server.Parent.SpanID())
			}
			if server.SpanKind != trace.SpanKindServer || enqueue.SpanKind != trace.SpanKindProducer || attempt.SpanKind != trace.SpanKindConsumer {
				t.Errorf("kinds: request %v, enqueue %v, attempt %v", server.SpanKind, enqueue.SpanKind, attempt.SpanKind)
			}

			wantAttempt := map[string]attribute.Value{
				"picloud.invocation.id": attribute.Int64Value(res.id),
				"picloud.function":      attribute.StringValue("hello"),
				"picloud.attempt":       attribute.IntValue(1),
				"picloud.status":        attribute.StringValue("succeeded"),
				"picloud.trigger":       attribute.StringValue(tt.trigger),
			}
			for k, want := range wantAttempt {
				if got := attr(attempt, k); got != want {
					t.Errorf("attempt %s = %v, want %v", k, got.String(), want.String())
				}
			}
			if got := attr(enqueue, "picloud.invocation.id"); got != attribute.Int64Value(res.id) {
				t.Errorf("enqueue picloud.invocation.id = %v, want %d", got.String(), res.id)
			}
			if got := attr(server, "http.response.status_code"); got != attribute.IntValue(http.StatusOK) {
				t.Errorf("request http.response.status_code = %v", got.String())
			}

			wantRow := "00-" + traceID.String() + "-" + enqueue.SpanContext.SpanID().String() + "-01"
			if got := rowTraceParent(t, p, res.id); got != wantRow {
				t.Errorf("row trace_parent = %q, want %q", got, wantRow)
			}
			wantHeader := "00-" + traceID.String() + "-" + server.SpanContext.SpanID().String() + "-01"
			if got := res.header.Get("Traceparent"); got != wantHeader {
				t.Errorf("response traceparent = %q, want %q", got, wantHeader)
			}
		})
	}
}

// TestTraceFromSQL: an application that sets picloud.trace_parent around
// picloud.invoke gets the worker's spans in its trace.
func TestTraceFromSQL(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	p := platformtest.Start(t, platformtest.Options{TracerProvider: provider})
	request(t, http.MethodPut, p.URL+"/v1/functions/hello", map[string]string{"source": `function handle(req) return "hi" end`}, "")

	ctx := context.Background()
	tx, err := p.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	if _, err := tx.Exec(ctx, `SELECT set_config('picloud.trace_parent', $1, true)`, callerTraceParnt); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, `SELECT picloud.invoke('hello')`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	attempt := waitForSpans(t, exporter, "picloud.attempt")["picloud.attempt"]
	if attempt.SpanContext.TraceID().String() != callerTraceID || attempt.Parent.SpanID().String() != callerSpanID {
		t.Errorf("attempt continues %s/%s, want %s/%s", attempt.SpanContext.TraceID(), attempt.Parent.SpanID(), callerTraceID, callerSpanID)
	}
	if got := attr(attempt, "picloud.invocation.id"); got != attribute.Int64Value(id) {
		t.Errorf("attempt picloud.invocation.id = %v, want %d", got.String(), id)
	}
}

// TestUntraced: with tracing off nothing is recorded, yet a caller's
// traceparent still reaches the row (a worker that traces continues it),
// and a call without one stores none.
func TestUntraced(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options{})
	request(t, http.MethodPut, p.URL+"/v1/functions/hello", map[string]string{"source": `function handle(req) return "hi" end`}, "")
	tests := []struct {
		name        string
		traceParent string
	}{
		{"no traceparent", ""},
		{"traceparent", callerTraceParnt},
		{"malformed traceparent", "00-zz-yy-01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := request(t, http.MethodGet, p.URL+"/fn/hello", nil, tt.traceParent)
			want := tt.traceParent
			if tt.name == "malformed traceparent" {
				want = ""
			}
			if got := rowTraceParent(t, p, res.id); got != want {
				t.Errorf("row trace_parent = %q, want %q", got, want)
			}
			if got := res.header.Get("Traceparent"); got != "" {
				t.Errorf("response traceparent = %q with tracing off", got)
			}
		})
	}
}
