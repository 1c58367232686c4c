package tracing

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// This exporter replaces otlptracehttp, whose import of the collector
// package's generated gRPC service code links gRPC into the binary: with
// OpenTelemetry v1.47.0 it makes the stripped static binary 2,748,416 bytes
// larger (69 gRPC packages), on a node that may be a Raspberry Pi. It uses
// the OTLP message types only and writes the request's single field by
// hand, and does what the OTLP/HTTP specification asks of an exporter:
// retries with backoff, Retry-After, TLS and client certificates.

// exporterConfig is what the standard OTEL_EXPORTER_OTLP_* variables say.
type exporterConfig struct {
	url string
	// shown is url without a password, for logs and errors.
	shown   string
	headers map[string]string
	// timeout bounds one batch's export, retries and their waits included,
	// as OTEL_EXPORTER_OTLP_TIMEOUT says ("the maximum time the exporter
	// will wait for each batch export").
	timeout time.Duration
	gzip    bool
	// tls is nil unless a certificate variable is set: then it holds the
	// CA to verify the collector with and the client certificate for
	// mutual TLS.
	tls *tls.Config
	// retry is the backoff between attempts of one batch.
	retry retryPolicy
}

// retryPolicy is an exponential backoff with jitter: the n-th wait (from
// 0) is initial·2ⁿ capped at max, scaled by a random factor in [0.5, 1.5)
// so that nodes that failed together do not retry together. The total is
// bounded by the export's timeout, not by a number of attempts.
type retryPolicy struct {
	initial time.Duration
	max     time.Duration
}

// The default backoff: 0.5 s, 1 s, 2 s, 4 s, 5 s, 5 s... Within the default
// 10 s export timeout that is four or five attempts, enough to ride out a
// collector's restart without holding the batch processor (which exports
// one batch at a time) for long.
var defaultRetry = retryPolicy{initial: 500 * time.Millisecond, max: 5 * time.Second}

const defaultExportTimeout = 10 * time.Second

// exporterConfigFromEnv reads the variables otlptracehttp read. A per-signal
// variable (…_TRACES_…) wins over the general one, as the specification
// asks. A malformed value is an error rather than a default: a node that
// starts without its collector's auth header would drop every span quietly.
func exporterConfigFromEnv(getenv func(string) string) (exporterConfig, error) {
	cfg := exporterConfig{timeout: defaultExportTimeout, retry: defaultRetry}
	if e := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); e != "" {
		u, err := parseEndpoint(e)
		if err != nil {
			return cfg, fmt.Errorf("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: %w", err)
		}
		// The per-signal URL is used as is, except that no path means /.
		if u.Path == "" {
			u.Path = "/"
		}
		cfg.url = u.String()
	} else if e := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); e != "" {
		u, err := parseEndpoint(e)
		if err != nil {
			return cfg, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %w", err)
		}
		// The general endpoint is a base: path.Join keeps one slash whether
		// or not the base ends with one.
		u.Path = path.Join("/", u.Path, "v1/traces")
		u.RawPath = ""
		cfg.url = u.String()
	} else {
		return cfg, errors.New("no OTLP endpoint: set OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	}
	if u, err := url.Parse(cfg.url); err == nil {
		cfg.shown = u.Redacted()
	}

	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"} {
		if v := getenv(name); v != "" {
			h, err := parseHeaders(v)
			if err != nil {
				return cfg, fmt.Errorf("%s: %w", name, err)
			}
			cfg.headers = h
			break
		}
	}

	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"} {
		if v := getenv(name); v != "" {
			ms, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || ms < 0 {
				return cfg, fmt.Errorf("%s: %q is not a number of milliseconds", name, v)
			}
			cfg.timeout = time.Duration(ms) * time.Millisecond
			break
		}
	}

	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"} {
		if v := getenv(name); v != "" {
			switch strings.ToLower(strings.TrimSpace(v)) {
			case "gzip":
				cfg.gzip = true
			case "none":
			default:
				return cfg, fmt.Errorf("%s: %q is neither gzip nor none", name, v)
			}
			break
		}
	}

	tlsConfig, err := tlsConfigFromEnv(getenv)
	if err != nil {
		return cfg, err
	}
	cfg.tls = tlsConfig
	return cfg, nil
}

// tlsConfigFromEnv reads the certificate variables: each traces-specific
// one wins over its general one on its own, so a deployment may set the
// CA for every signal and a client certificate for traces only. It returns
// nil when none is set (the system's roots, no client certificate). A file
// that cannot be read or parsed is an error: a node that silently fell
// back to the system roots would fail every export against a private CA.
func tlsConfigFromEnv(getenv func(string) string) (*tls.Config, error) {
	pick := func(suffix string) (name, value string) {
		for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_" + suffix, "OTEL_EXPORTER_OTLP_" + suffix} {
			if v := strings.TrimSpace(getenv(name)); v != "" {
				return name, v
			}
		}
		return "", ""
	}
	caName, caFile := pick("CERTIFICATE")
	certName, certFile := pick("CLIENT_CERTIFICATE")
	keyName, keyFile := pick("CLIENT_KEY")
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", caName, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: %s holds no PEM certificate", caName, caFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case certFile != "" && keyFile != "":
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%s and %s: %w", certName, keyName, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	case certFile != "":
		return nil, fmt.Errorf("%s is set without OTEL_EXPORTER_OTLP_CLIENT_KEY (or its TRACES_ variant)", certName)
	case keyFile != "":
		return nil, fmt.Errorf("%s is set without OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE (or its TRACES_ variant)", keyName)
	}
	return cfg, nil
}

func parseEndpoint(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http:// or https:// URL", s)
	}
	return u, nil
}

// parseHeaders reads the W3C-baggage-like list the specification uses:
// comma-separated key=value pairs whose values are URL-encoded.
func parseHeaders(s string) (map[string]string, error) {
	headers := map[string]string{}
	for pair := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", pair)
		}
		dk, err := url.PathUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("header %q: %w", k, err)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("header %q: %w", k, err)
		}
		headers[dk] = dv
	}
	return headers, nil
}

// exporter sends spans to an OTLP/HTTP collector as protobuf. It retries
// as the OTLP specification asks: on 429, 502, 503 and 504 and on
// connection errors, with exponential backoff, honouring Retry-After, for
// at most the export timeout. Other answers (400, 401, 413, 500...) would
// fail again and are not retried. A batch that still fails is dropped: the
// BatchSpanProcessor reports the error to OpenTelemetry's error handler,
// which Start routes to the node's log, so a collector that stays down
// costs spans, never memory.
type exporter struct {
	cfg     exporterConfig
	client  *http.Client
	stopped atomic.Bool
	// wait sleeps between attempts; tests replace it to record the waits
	// instead of sleeping through them.
	wait func(ctx context.Context, d time.Duration) error
}

func newExporter(cfg exporterConfig) *exporter {
	if cfg.retry.initial <= 0 || cfg.retry.max <= 0 {
		cfg.retry = defaultRetry
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.tls != nil {
		transport.TLSClientConfig = cfg.tls.Clone()
	}
	return &exporter{cfg: cfg, client: &http.Client{Transport: transport}, wait: sleep}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var errStopped = errors.New("OTLP exporter is shut down")

// ExportSpans implements sdktrace.SpanExporter.
func (e *exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if e.stopped.Load() {
		return errStopped
	}
	if len(spans) == 0 {
		return nil
	}
	body, err := encodeRequest(resourceSpans(spans))
	if err != nil {
		return err
	}
	if e.cfg.gzip {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(body); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		body = buf.Bytes()
	}
	if e.cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.cfg.timeout)
		defer cancel()
	}
	for attempt := 0; ; attempt++ {
		retryAfter, err := e.send(ctx, body)
		if err == nil {
			return nil
		}
		err = fmt.Errorf("OTLP export of %d spans to %s: %w", len(spans), e.cfg.shown, err)
		var r *retryable
		if !errors.As(err, &r) || ctx.Err() != nil {
			if attempt > 0 {
				return fmt.Errorf("%w (after %d attempts)", err, attempt+1)
			}
			return err
		}
		d := retryAfter
		if d <= 0 {
			d = e.cfg.retry.backoff(attempt)
		}
		// A wait that ends after the deadline would only end in the
		// deadline's error: give up now with the collector's.
		if deadline, ok := ctx.Deadline(); ok && time.Now().Add(d).After(deadline) {
			return fmt.Errorf("%w (after %d attempts; the next, in %v, would pass the export timeout)", err, attempt+1, d.Round(time.Millisecond))
		}
		if werr := e.wait(ctx, d); werr != nil {
			return fmt.Errorf("%w (after %d attempts)", err, attempt+1)
		}
	}
}

// retryable marks an attempt's error that the specification says to retry.
type retryable struct{ err error }

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// send makes one attempt. Its error is a *retryable when another attempt
// may succeed, and then retryAfter is the wait the collector asked for
// (0 when it named none).
func (e *exporter) send(ctx context.Context, body []byte) (retryAfter time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.cfg.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	for k, v := range e.cfg.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("User-Agent", "picloud-otlp")
	if e.cfg.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	res, err := e.client.Do(req)
	if err != nil {
		// Refused, reset, DNS, TLS handshake: the collector may be
		// restarting. A certificate the CA does not vouch for will not
		// change between attempts, so that is not retried.
		var unknownCA x509.UnknownAuthorityError
		var hostname x509.HostnameError
		var invalid x509.CertificateInvalidError
		var verify *tls.CertificateVerificationError
		// crypto/tls reports an alert from the collector (our client
		// certificate refused, or none sent) as a *net.OpError "remote
		// error".
		var op *net.OpError
		remoteTLS := errors.As(err, &op) && op.Op == "remote error"
		if ctx.Err() != nil || remoteTLS || errors.As(err, &unknownCA) || errors.As(err, &hostname) ||
			errors.As(err, &invalid) || errors.As(err, &verify) {
			return 0, err
		}
		return 0, &retryable{err}
	}
	defer func() { _ = res.Body.Close() }()
	// Enough of the body to say why, and the rest drained (bounded) so the
	// connection is reused.
	excerpt, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode >= 200 && res.StatusCode <= 299 {
		return 0, nil
	}
	err = fmt.Errorf("%s: %s", res.Status, printable(excerpt))
	switch res.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return parseRetryAfter(res.Header.Get("Retry-After"), time.Now()), &retryable{err}
	}
	return 0, err
}

// parseRetryAfter reads Retry-After, a number of seconds or an HTTP date
// (RFC 9110, 10.2.3). It returns 0 for an absent, malformed or past value,
// and then the backoff decides.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Anything beyond an hour is past every export timeout anyway;
		// the cap keeps the multiplication from overflowing.
		return time.Duration(min(secs, 3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// backoff is the wait after the attempt-th failed attempt (from 0).
func (p retryPolicy) backoff(attempt int) time.Duration {
	d := p.max
	if attempt < 30 {
		d = min(p.initial<<attempt, p.max)
	}
	// Jitter in [0.5, 1.5): math/rand/v2's global source is safe for
	// concurrent use and needs no seeding.
	return time.Duration(float64(d) * (0.5 + rand.Float64()))
}

// printable keeps an error line readable when the collector answers with
// protobuf (a google.rpc.Status) rather than text.
func printable(b []byte) string {
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || (r < 0x20 && r != '\t') || r == 0x7f {
			return '.'
		}
		return r
	}, strings.TrimSpace(string(b)))
}

// Shutdown implements sdktrace.SpanExporter. The processor has flushed
// before it calls this, so there is nothing left to send.
func (e *exporter) Shutdown(ctx context.Context) error {
	e.stopped.Store(true)
	e.client.CloseIdleConnections()
	return ctx.Err()
}

// encodeRequest writes an ExportTraceServiceRequest, whose only field is
// `repeated ResourceSpans resource_spans = 1`, without importing its
// generated type: the collector package carries the gRPC service.
func encodeRequest(rss []*tracepb.ResourceSpans) ([]byte, error) {
	var b []byte
	for _, rs := range rss {
		m, err := proto.Marshal(rs)
		if err != nil {
			return nil, fmt.Errorf("OTLP encode: %w", err)
		}
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, m)
	}
	return b, nil
}

// resourceSpans groups spans by resource, then by instrumentation scope,
// in the order they first appear.
func resourceSpans(spans []sdktrace.ReadOnlySpan) []*tracepb.ResourceSpans {
	type scopeKey struct {
		res   attribute.Distinct
		scope instrumentation.Scope
	}
	var out []*tracepb.ResourceSpans
	byRes := map[attribute.Distinct]*tracepb.ResourceSpans{}
	byScope := map[scopeKey]*tracepb.ScopeSpans{}
	for _, s := range spans {
		if s == nil {
			continue
		}
		res := s.Resource()
		rk := res.Equivalent()
		rs, ok := byRes[rk]
		if !ok {
			rs = &tracepb.ResourceSpans{Resource: resourceProto(res), SchemaUrl: res.SchemaURL()}
			byRes[rk] = rs
			out = append(out, rs)
		}
		scope := s.InstrumentationScope()
		sk := scopeKey{rk, scope}
		ss, ok := byScope[sk]
		if !ok {
			ss = &tracepb.ScopeSpans{Scope: scopeProto(scope), SchemaUrl: scope.SchemaURL}
			byScope[sk] = ss
			rs.ScopeSpans = append(rs.ScopeSpans, ss)
		}
		ss.Spans = append(ss.Spans, spanProto(s))
	}
	return out
}

func resourceProto(r *resource.Resource) *resourcepb.Resource {
	return &resourcepb.Resource{Attributes: iterProto(r.Iter())}
}

func scopeProto(s instrumentation.Scope) *commonpb.InstrumentationScope {
	if s == (instrumentation.Scope{}) {
		return nil
	}
	return &commonpb.InstrumentationScope{Name: s.Name, Version: s.Version, Attributes: iterProto(s.Attributes.Iter())}
}

func spanProto(s sdktrace.ReadOnlySpan) *tracepb.Span {
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	st := s.Status()
	p := &tracepb.Span{
		TraceId:                tid[:],
		SpanId:                 sid[:],
		TraceState:             sc.TraceState().String(),
		Name:                   s.Name(),
		Kind:                   kindProto(s.SpanKind()),
		StartTimeUnixNano:      unixNano(s.StartTime()),
		EndTimeUnixNano:        unixNano(s.EndTime()),
		Attributes:             attrsProto(s.Attributes()),
		DroppedAttributesCount: clampUint32(s.DroppedAttributes()),
		Events:                 eventsProto(s.Events()),
		DroppedEventsCount:     clampUint32(s.DroppedEvents()),
		Links:                  linksProto(s.Links()),
		DroppedLinksCount:      clampUint32(s.DroppedLinks()),
		Status:                 statusProto(st.Code, st.Description),
		Flags:                  flags(sc.TraceFlags(), s.Parent().IsRemote()),
	}
	if psid := s.Parent().SpanID(); psid.IsValid() {
		p.ParentSpanId = psid[:]
	}
	return p
}

// flags carries the W3C trace flags in the low byte and says whether the
// parent (or a link's target) is remote, which the ids alone cannot tell.
func flags(tf trace.TraceFlags, remote bool) uint32 {
	f := uint32(tf) | uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
	if remote {
		f |= uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)
	}
	return f
}

func kindProto(k trace.SpanKind) tracepb.Span_SpanKind {
	switch k {
	case trace.SpanKindInternal:
		return tracepb.Span_SPAN_KIND_INTERNAL
	case trace.SpanKindServer:
		return tracepb.Span_SPAN_KIND_SERVER
	case trace.SpanKindClient:
		return tracepb.Span_SPAN_KIND_CLIENT
	case trace.SpanKindProducer:
		return tracepb.Span_SPAN_KIND_PRODUCER
	case trace.SpanKindConsumer:
		return tracepb.Span_SPAN_KIND_CONSUMER
	default:
		return tracepb.Span_SPAN_KIND_UNSPECIFIED
	}
}

func statusProto(c codes.Code, msg string) *tracepb.Status {
	code := tracepb.Status_STATUS_CODE_UNSET
	switch c {
	case codes.Ok:
		code = tracepb.Status_STATUS_CODE_OK
	case codes.Error:
		code = tracepb.Status_STATUS_CODE_ERROR
	}
	return &tracepb.Status{Code: code, Message: msg}
}

func eventsProto(es []sdktrace.Event) []*tracepb.Span_Event {
	if len(es) == 0 {
		return nil
	}
	out := make([]*tracepb.Span_Event, len(es))
	for i, e := range es {
		out[i] = &tracepb.Span_Event{
			Name:                   e.Name,
			TimeUnixNano:           unixNano(e.Time),
			Attributes:             attrsProto(e.Attributes),
			DroppedAttributesCount: clampUint32(e.DroppedAttributeCount),
		}
	}
	return out
}

func linksProto(ls []sdktrace.Link) []*tracepb.Span_Link {
	if len(ls) == 0 {
		return nil
	}
	out := make([]*tracepb.Span_Link, len(ls))
	for i, l := range ls {
		tid, sid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		out[i] = &tracepb.Span_Link{
			TraceId:                tid[:],
			SpanId:                 sid[:],
			TraceState:             l.SpanContext.TraceState().String(),
			Attributes:             attrsProto(l.Attributes),
			DroppedAttributesCount: clampUint32(l.DroppedAttributeCount),
			Flags:                  flags(l.SpanContext.TraceFlags(), l.SpanContext.IsRemote()),
		}
	}
	return out
}

func attrsProto(kvs []attribute.KeyValue) []*commonpb.KeyValue {
	if len(kvs) == 0 {
		return nil
	}
	out := make([]*commonpb.KeyValue, len(kvs))
	for i, kv := range kvs {
		out[i] = &commonpb.KeyValue{Key: string(kv.Key), Value: valueProto(kv.Value)}
	}
	return out
}

func iterProto(it attribute.Iterator) []*commonpb.KeyValue {
	if it.Len() == 0 {
		return nil
	}
	out := make([]*commonpb.KeyValue, 0, it.Len())
	for it.Next() {
		kv := it.Attribute()
		out = append(out, &commonpb.KeyValue{Key: string(kv.Key), Value: valueProto(kv.Value)})
	}
	return out
}

func valueProto(v attribute.Value) *commonpb.AnyValue {
	switch v.Type() {
	case attribute.BOOL:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v.AsBool()}}
	case attribute.INT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v.AsInt64()}}
	case attribute.FLOAT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v.AsFloat64()}}
	case attribute.STRING:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v.AsString()}}
	case attribute.BYTESLICE:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: v.AsByteSlice()}}
	case attribute.BOOLSLICE:
		return arrayProto(v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		return arrayProto(v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		return arrayProto(v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		return arrayProto(v.AsStringSlice(), attribute.StringValue)
	case attribute.SLICE:
		return arrayProto(v.AsSlice(), func(v attribute.Value) attribute.Value { return v })
	case attribute.MAP:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: attrsProto(v.AsMap())}}}
	case attribute.EMPTY:
		// OTLP's empty value is an AnyValue with no field set.
		return &commonpb.AnyValue{}
	default:
		// A type newer than this code: say so rather than drop the key.
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "INVALID"}}
	}
}

func arrayProto[T any](vs []T, wrap func(T) attribute.Value) *commonpb.AnyValue {
	out := make([]*commonpb.AnyValue, len(vs))
	for i, v := range vs {
		out[i] = valueProto(wrap(v))
	}
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: out}}}
}

func unixNano(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(max(0, t.UnixNano())) //nolint:gosec // negative clamped to 0
}

func clampUint32(n int) uint32 {
	return uint32(min(max(int64(n), 0), math.MaxUint32)) //nolint:gosec // clamped to the uint32 range
}
