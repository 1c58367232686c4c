package api

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// tracerName names the spans this package makes.
const tracerName = "github.com/picloud/picloud/api"

// tracedPath reports whether a request to path gets a span: the API and the
// ingress, not probes, scrapes or documents.
func tracedPath(path string) bool {
	return strings.HasPrefix(path, "/fn/") || strings.HasPrefix(path, "/v1/")
}

// serveTraced serves r with next under a server span that continues the
// caller's W3C traceparent, if any. With tracing off it still takes the
// caller's traceparent into the context, which costs a header lookup: the
// invocation row then carries it, and a worker that traces continues the
// caller's trace.
func (s *Server) serveTraced(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if !tracedPath(r.URL.Path) {
		next.ServeHTTP(w, r)
		return
	}
	if r.Header.Get("Traceparent") != "" {
		r = r.WithContext(propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
	}
	if s.tracer == nil {
		next.ServeHTTP(w, r)
		return
	}
	ctx, span := s.tracer.Start(r.Context(), r.Method, trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	if span.SpanContext().IsValid() {
		// The caller learns the trace id of its request.
		propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(w.Header()))
	}
	sw := &statusWriter{ResponseWriter: w}
	r = r.WithContext(ctx)
	next.ServeHTTP(sw, r)
	if !span.IsRecording() {
		return
	}
	// The ServeMux set the matched pattern on r, which it was given.
	route := r.Pattern
	if _, path, ok := strings.Cut(route, " "); ok {
		route = path // "POST /v1/..." patterns name the method too
	}
	if route != "" {
		span.SetName(r.Method + " " + route)
		span.SetAttributes(attribute.String("http.route", route))
	}
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	span.SetAttributes(
		attribute.String("http.request.method", r.Method),
		attribute.String("url.path", r.URL.Path),
		attribute.Int("http.response.status_code", status),
	)
	if name := r.PathValue("name"); name != "" {
		span.SetAttributes(attribute.String("picloud.function", name))
	}
	if status >= http.StatusInternalServerError {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
}

// statusWriter remembers the response's status for the span. It passes
// Flush and Hijack on, and Unwrap lets http.ResponseController reach the
// rest, so that streaming responses work as they would without it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := w.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("the response writer does not support hijacking")
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
