package queue

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// tracerName names the spans this package makes.
const tracerName = "github.com/picloud/picloud/queue"

// Span attribute keys; the same names appear on the api's spans.
const (
	attrInvocationID = "picloud.invocation.id"
	attrFunction     = "picloud.function"
	attrTrigger      = "picloud.trigger"
	attrAttempt      = "picloud.attempt"
	attrStatus       = "picloud.status"
)

// traceParent is the W3C traceparent of the span in ctx, to be stored in
// the invocation row so that the worker that runs it, on any node,
// continues the trace; empty when ctx carries no valid span context.
func traceParent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier.Get("traceparent")
}

// continueTrace returns ctx with the remote span context of the row's
// traceparent, if it has a valid one.
func continueTrace(ctx context.Context, traceParent *string) context.Context {
	if traceParent == nil || *traceParent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": *traceParent})
}
