// Package tracing starts OpenTelemetry tracing when the environment asks for
// it, with the standard variables: OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT turn it on (OTLP over HTTP with
// protobuf), and the exporter, sampler and resource read the rest
// (OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_SAMPLER, OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES, ...). Without an endpoint nothing starts: the
// callers get no provider and use OpenTelemetry's no-op tracer.
package tracing

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Configured reports whether getenv (os.Getenv) names an OTLP endpoint for
// traces and does not switch tracing off.
func Configured(getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") || strings.EqualFold(getenv("OTEL_TRACES_EXPORTER"), "none") {
		return false
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Options describe the process in its spans' resource.
type Options struct {
	// Role is the node's role (serve, api, worker, dev), recorded as
	// picloud.role.
	Role string
	// InstanceID names the node (service.instance.id), when known.
	InstanceID string
	Version    string
}

// Start returns a tracer provider that exports over OTLP/HTTP, and the
// function that flushes and stops it; call Configured first. A malformed
// OTEL_EXPORTER_OTLP_* variable is an error, but the exporter connects
// lazily: an unreachable collector costs dropped spans and a log line, not a
// failed start.
func Start(ctx context.Context, logger *slog.Logger, opts Options) (trace.TracerProvider, func(context.Context) error, error) {
	// Only OTLP/HTTP with protobuf ships: gRPC would add megabytes to the
	// binary.
	if p := cmp.Or(os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")); p != "" && p != "http/protobuf" {
		logger.WarnContext(ctx, "tracing: only OTLP over http/protobuf is supported; sending with it", "requested", p)
	}
	cfg, err := exporterConfigFromEnv(os.Getenv)
	if err != nil {
		return nil, nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	exporter := newExporter(cfg)
	attrs := []attribute.KeyValue{attribute.String("service.name", "picloud")}
	if opts.Version != "" {
		attrs = append(attrs, attribute.String("service.version", opts.Version))
	}
	if opts.InstanceID != "" {
		attrs = append(attrs, attribute.String("service.instance.id", opts.InstanceID))
	}
	if opts.Role != "" {
		attrs = append(attrs, attribute.String("picloud.role", opts.Role))
	}
	// Later options win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
	// override the defaults above.
	res, err := resource.New(ctx,
		resource.WithAttributes(attrs...),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithFromEnv(),
	)
	if err != nil {
		// A partial resource is still usable; say what is missing.
		logger.WarnContext(ctx, "tracing: resource", "error", err)
	}
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter),
		sdktrace.WithResource(res),
	)
	// OpenTelemetry reports export failures through its process-wide
	// handler, which prints with the log package by default; route them to
	// the node's logger instead.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("tracing: export", "error", err)
	}))
	logger.InfoContext(ctx, "tracing: exporting spans over OTLP/HTTP", "endpoint", cfg.shown)
	return provider, provider.Shutdown, nil
}
