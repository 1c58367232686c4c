package tracing

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// collector is a fake OTLP/HTTP receiver that decodes with the real
// generated request type, so the hand-written envelope is checked against it.
type collector struct {
	mu       sync.Mutex
	requests []*coltracepb.ExportTraceServiceRequest
	headers  []http.Header
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		http.Error(w, "wrong method or path "+r.Method+" "+r.URL.Path, http.StatusNotFound)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(b, req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.requests = append(c.requests, req)
	c.headers = append(c.headers, r.Header.Clone())
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(nil)
}

func TestExporterSendsOTLP(t *testing.T) {
	for _, compressed := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "gzip"}[compressed], func(t *testing.T) {
			testExporterSendsOTLP(t, compressed)
		})
	}
}

func testExporterSendsOTLP(t *testing.T, compressed bool) {
	c := &collector{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	env := map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL,
		"OTEL_EXPORTER_OTLP_HEADERS":  "Authorization=Bearer%20secret,X-Tenant=pi",
	}
	if compressed {
		env["OTEL_EXPORTER_OTLP_COMPRESSION"] = "gzip"
	}
	cfg, err := exporterConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	exp := newExporter(cfg)
	res := resource.NewSchemaless(attribute.String("service.name", "picloud-test"), attribute.String("picloud.role", "worker"))
	provider := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	ctx := context.Background()

	remoteTraceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	remoteSpanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ts, _ := trace.ParseTraceState("vendor=abc")
	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: remoteTraceID, SpanID: remoteSpanID, TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true,
	})
	linkTraceID, _ := trace.TraceIDFromHex("0102030405060708090a0b0c0d0e0f10")
	linkSpanID, _ := trace.SpanIDFromHex("0102030405060708")
	linked := trace.NewSpanContext(trace.SpanContextConfig{TraceID: linkTraceID, SpanID: linkSpanID, Remote: true})

	allTypes := []attribute.KeyValue{
		attribute.Bool("b", true),
		attribute.Int64("i", -7),
		attribute.Float64("f", 1.5),
		attribute.String("s", "text"),
		attribute.BoolSlice("bs", []bool{true, false}),
		attribute.Int64Slice("is", []int64{1, 2}),
		attribute.Float64Slice("fs", []float64{0.25}),
		attribute.StringSlice("ss", []string{"a", "b"}),
	}
	server, serverSpan := provider.Tracer("picloud/api", trace.WithInstrumentationVersion("1.2.3")).Start(
		trace.ContextWithRemoteSpanContext(ctx, remote), "GET /fn/{name}",
		trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(allTypes...),
		trace.WithLinks(trace.Link{SpanContext: linked, Attributes: []attribute.KeyValue{attribute.String("why", "batch")}}))
	_, child := provider.Tracer("picloud/queue").Start(server, "picloud.enqueue", trace.WithSpanKind(trace.SpanKindProducer))
	child.AddEvent("inserted", trace.WithAttributes(attribute.Int("rows", 1)))
	child.SetStatus(codes.Error, "duplicate")
	child.End()
	serverSpan.SetStatus(codes.Ok, "")
	serverSpan.End()
	if err := provider.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.requests) != 1 {
		t.Fatalf("collector got %d requests, want 1", len(c.requests))
	}
	h := c.headers[0]
	for k, want := range map[string]string{"Authorization": "Bearer secret", "X-Tenant": "pi", "Content-Type": "application/x-protobuf"} {
		if got := h.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if got, want := h.Get("Content-Encoding"), map[bool]string{true: "gzip"}[compressed]; got != want {
		t.Errorf("Content-Encoding = %q, want %q", got, want)
	}

	rss := c.requests[0].GetResourceSpans()
	if len(rss) != 1 {
		t.Fatalf("%d ResourceSpans, want 1 (one resource)", len(rss))
	}
	resAttrs := map[string]string{}
	for _, kv := range rss[0].GetResource().GetAttributes() {
		resAttrs[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	if resAttrs["service.name"] != "picloud-test" || resAttrs["picloud.role"] != "worker" {
		t.Errorf("resource attributes %v", resAttrs)
	}
	spans := map[string]*tracepb.Span{}
	scopes := map[string]string{}
	for _, ss := range rss[0].GetScopeSpans() {
		for _, s := range ss.GetSpans() {
			spans[s.GetName()] = s
			scopes[s.GetName()] = ss.GetScope().GetName() + "@" + ss.GetScope().GetVersion()
		}
	}
	if n := len(rss[0].GetScopeSpans()); n != 2 {
		t.Errorf("%d ScopeSpans, want 2 (one per tracer)", n)
	}
	srvPB, childPB := spans["GET /fn/{name}"], spans["picloud.enqueue"]
	if srvPB == nil || childPB == nil {
		t.Fatalf("spans received: %v", spans)
	}
	if scopes["GET /fn/{name}"] != "picloud/api@1.2.3" || scopes["picloud.enqueue"] != "picloud/queue@" {
		t.Errorf("scopes %v", scopes)
	}

	serverID := serverSpan.SpanContext().SpanID()
	wantSrv := &tracepb.Span{
		TraceId:           remoteTraceID[:],
		SpanId:            serverID[:],
		ParentSpanId:      remoteSpanID[:],
		TraceState:        "vendor=abc",
		Name:              "GET /fn/{name}",
		Kind:              tracepb.Span_SPAN_KIND_SERVER,
		StartTimeUnixNano: srvPB.GetStartTimeUnixNano(),
		EndTimeUnixNano:   srvPB.GetEndTimeUnixNano(),
		Attributes: []*commonpb.KeyValue{
			{Key: "b", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: true}}},
			{Key: "i", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: -7}}},
			{Key: "f", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 1.5}}},
			{Key: "s", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "text"}}},
			{Key: "bs", Value: array(&commonpb.AnyValue_BoolValue{BoolValue: true}, &commonpb.AnyValue_BoolValue{BoolValue: false})},
			{Key: "is", Value: array(&commonpb.AnyValue_IntValue{IntValue: 1}, &commonpb.AnyValue_IntValue{IntValue: 2})},
			{Key: "fs", Value: array(&commonpb.AnyValue_DoubleValue{DoubleValue: 0.25})},
			{Key: "ss", Value: array(&commonpb.AnyValue_StringValue{StringValue: "a"}, &commonpb.AnyValue_StringValue{StringValue: "b"})},
		},
		Links: []*tracepb.Span_Link{{
			TraceId:    linkTraceID[:],
			SpanId:     linkSpanID[:],
			Attributes: []*commonpb.KeyValue{{Key: "why", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "batch"}}}},
			Flags:      uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK | tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK),
		}},
		Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK},
		Flags:  uint32(trace.FlagsSampled) | uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK|tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK),
	}
	if !proto.Equal(srvPB, wantSrv) {
		t.Errorf("server span\n got %v\nwant %v", srvPB, wantSrv)
	}
	if srvPB.GetStartTimeUnixNano() == 0 || srvPB.GetEndTimeUnixNano() < srvPB.GetStartTimeUnixNano() {
		t.Errorf("server span times %d..%d", srvPB.GetStartTimeUnixNano(), srvPB.GetEndTimeUnixNano())
	}

	if string(childPB.GetTraceId()) != string(remoteTraceID[:]) || string(childPB.GetParentSpanId()) != string(serverID[:]) {
		t.Errorf("child in trace %x under %x, want %x under %x", childPB.GetTraceId(), childPB.GetParentSpanId(), remoteTraceID[:], serverID[:])
	}
	if childPB.GetKind() != tracepb.Span_SPAN_KIND_PRODUCER {
		t.Errorf("child kind %v", childPB.GetKind())
	}
	if st := childPB.GetStatus(); st.GetCode() != tracepb.Status_STATUS_CODE_ERROR || st.GetMessage() != "duplicate" {
		t.Errorf("child status %v", st)
	}
	// A local parent: the remote bit is known and clear.
	if want := uint32(trace.FlagsSampled) | uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK); childPB.GetFlags() != want {
		t.Errorf("child flags %#x, want %#x", childPB.GetFlags(), want)
	}
	if ev := childPB.GetEvents(); len(ev) != 1 || ev[0].GetName() != "inserted" || ev[0].GetTimeUnixNano() == 0 ||
		len(ev[0].GetAttributes()) != 1 || ev[0].GetAttributes()[0].GetValue().GetIntValue() != 1 {
		t.Errorf("child events %v", ev)
	}
}

func array(vs ...any) *commonpb.AnyValue {
	out := make([]*commonpb.AnyValue, len(vs))
	for i, v := range vs {
		switch v := v.(type) {
		case *commonpb.AnyValue_BoolValue:
			out[i] = &commonpb.AnyValue{Value: v}
		case *commonpb.AnyValue_IntValue:
			out[i] = &commonpb.AnyValue{Value: v}
		case *commonpb.AnyValue_DoubleValue:
			out[i] = &commonpb.AnyValue{Value: v}
		case *commonpb.AnyValue_StringValue:
			out[i] = &commonpb.AnyValue{Value: v}
		}
	}
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: out}}}
}

// TestValueProto covers the attribute types the SDK's span API cannot set
// directly (bytes, nested slices, maps, empty).
func TestValueProto(t *testing.T) {
	str := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	tests := []struct {
		name string
		in   attribute.Value
		want *commonpb.AnyValue
	}{
		{"bytes", attribute.ByteSliceValue([]byte{0, 1}), &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{0, 1}}}},
		{"slice", attribute.SliceValue(attribute.StringValue("x"), attribute.IntValue(2)), &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{
			ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{str("x"), {Value: &commonpb.AnyValue_IntValue{IntValue: 2}}}},
		}}},
		{"map", attribute.MapValue(attribute.String("k", "v")), &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{
			KvlistValue: &commonpb.KeyValueList{Values: []*commonpb.KeyValue{{Key: "k", Value: str("v")}}},
		}}},
		{"empty", attribute.Value{}, &commonpb.AnyValue{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := valueProto(tt.in); !proto.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestExporterConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    exporterConfig
		wantErr string
	}{
		{"base endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
			exporterConfig{url: "http://collector:4318/v1/traces", timeout: 10 * time.Second}, ""},
		{"base endpoint with path and slash", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example/ingest/"},
			exporterConfig{url: "https://otel.example/ingest/v1/traces", timeout: 10 * time.Second}, ""},
		{"traces endpoint as is", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4318/otlp/spans", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:4318"},
			exporterConfig{url: "http://tempo:4318/otlp/spans", timeout: 10 * time.Second}, ""},
		{"traces endpoint without path", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4318"},
			exporterConfig{url: "http://tempo:4318/", timeout: 10 * time.Second}, ""},
		{"headers decoded", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_HEADERS": " api-key = a%2Cb%3Dc , X-Scope=tenant%201,"},
			exporterConfig{url: "http://c:4318/v1/traces", timeout: 10 * time.Second, headers: map[string]string{"api-key": "a,b=c", "X-Scope": "tenant 1"}}, ""},
		{"traces headers win", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_HEADERS": "a=1", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "b=2"},
			exporterConfig{url: "http://c:4318/v1/traces", timeout: 10 * time.Second, headers: map[string]string{"b": "2"}}, ""},
		{"timeout and gzip", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TIMEOUT": "2500", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"},
			exporterConfig{url: "http://c:4318/v1/traces", timeout: 2500 * time.Millisecond, gzip: true}, ""},
		{"traces timeout and compression win", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
			"OTEL_EXPORTER_OTLP_TIMEOUT": "2500", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "100",
			"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "none"},
			exporterConfig{url: "http://c:4318/v1/traces", timeout: 100 * time.Millisecond}, ""},
		{"password hidden from logs", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://u:pw@c:4318"},
			exporterConfig{url: "https://u:pw@c:4318/v1/traces", shown: "https://u:xxxxx@c:4318/v1/traces", timeout: 10 * time.Second}, ""},
		{"no endpoint", map[string]string{}, exporterConfig{}, "no OTLP endpoint"},
		{"no scheme", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, exporterConfig{}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{"grpc scheme", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "grpc://c:4317"}, exporterConfig{}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{"header without =", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_HEADERS": "a=1,oops"}, exporterConfig{}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{"bad escape", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "a=%zz"}, exporterConfig{}, "OTEL_EXPORTER_OTLP_TRACES_HEADERS"},
		{"timeout in seconds", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, exporterConfig{}, "OTEL_EXPORTER_OTLP_TIMEOUT"},
		{"unknown compression", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, exporterConfig{}, "OTEL_EXPORTER_OTLP_COMPRESSION"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := exporterConfigFromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want.shown == "" {
				tt.want.shown = tt.want.url
			}
			if got.url != tt.want.url || got.shown != tt.want.shown || got.timeout != tt.want.timeout || got.gzip != tt.want.gzip ||
				len(got.headers) != len(tt.want.headers) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for k, v := range tt.want.headers {
				if got.headers[k] != v {
					t.Errorf("header %q = %q, want %q", k, got.headers[k], v)
				}
			}
		})
	}
}

func TestExporterNon2xx(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "collector overloaded\x00"+strings.Repeat("x", 4096), http.StatusRequestEntityTooLarge)
	}))
	defer srv.Close()
	exp := newExporter(exporterConfig{url: srv.URL + "/v1/traces", shown: srv.URL + "/v1/traces", timeout: 5 * time.Second})
	spans := tracetest.SpanStubs{{Name: "s"}}.Snapshots()
	err := exp.ExportSpans(context.Background(), spans)
	if err == nil {
		t.Fatal("ExportSpans succeeded against a 413")
	}
	msg := err.Error()
	if !strings.Contains(msg, "413") || !strings.Contains(msg, "collector overloaded.") || len(msg) > 800 {
		t.Errorf("error %q: want the status and a short, printable excerpt", msg)
	}

	if err := exp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := exp.ExportSpans(context.Background(), spans); !errors.Is(err, errStopped) {
		t.Errorf("export after Shutdown: %v, want errStopped", err)
	}
}

// TestStart: the provider Start builds from the environment sends its spans,
// under the node's resource, to the collector the environment names.
func TestStart(t *testing.T) {
	c := &collector{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "X-Tenant=pi")
	ctx := context.Background()
	provider, shutdown, err := Start(ctx, slog.New(slog.DiscardHandler), Options{Role: "api", InstanceID: "node-1", Version: "v9"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := provider.Tracer("picloud/test").Start(ctx, "hello")
	span.End()
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.requests) != 1 || c.headers[0].Get("X-Tenant") != "pi" {
		t.Fatalf("collector got %d requests, headers %v", len(c.requests), c.headers)
	}
	rs := c.requests[0].GetResourceSpans()[0]
	got := map[string]string{}
	for _, kv := range rs.GetResource().GetAttributes() {
		got[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	for k, want := range map[string]string{"service.name": "picloud", "picloud.role": "api", "service.instance.id": "node-1", "service.version": "v9"} {
		if got[k] != want {
			t.Errorf("resource %s = %q, want %q", k, got[k], want)
		}
	}
	if name := rs.GetScopeSpans()[0].GetSpans()[0].GetName(); name != "hello" {
		t.Errorf("span %q, want hello", name)
	}
}
