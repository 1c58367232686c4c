// Package api is PiCloud's HTTP surface: the REST API under /v1, typed and
// documented with huma, the /fn ingress that turns HTTP requests into
// invocations, and the health checks.
package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"go.opentelemetry.io/otel/trace"

	"github.com/picloud/picloud/ui"
)

// Version is the API version reported in the OpenAPI document.
const Version = "0.1.0"

// DefaultMaxBodyBytes caps request bodies on /fn, as hosted platforms do
// (AWS Lambda takes 6 MB): a body is read into memory and stored in the
// invocation row.
const DefaultMaxBodyBytes = 6 << 20

// Config configures a Server.
type Config struct {
	// What the API serves from, one small interface per concern, each
	// defined where it is used: *queue.Client for invocations, events,
	// stats and readiness, *catalog.Catalog for functions, env and
	// schedules, *keys.Store for keys. They may be nil only to produce the
	// OpenAPI document.
	Invocations Invocations
	Events      EventSource
	Stats       StatsSource
	Ready       Readiness
	Functions   Functions
	Env         EnvStore
	Schedules   Schedules
	Keys        KeyStore

	Logger *slog.Logger
	// MaxBodyBytes caps /fn request bodies; zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// DisableAuth serves every request without an API key: for dev on a
	// laptop only.
	DisableAuth bool
	// QueueGrace is how long a synchronous /fn caller waits beyond the
	// function's timeout for a worker to pick the invocation up; zero means
	// 30 seconds. Past it the caller gets 504 and the invocation id.
	QueueGrace time.Duration
	// EventHeartbeat is how often an idle event stream gets a comment line;
	// zero means DefaultHeartbeat.
	EventHeartbeat time.Duration
	// Metrics, when set, is served at /metrics. It names every deployed
	// function, so it needs an admin key unless MetricsPublic is set (or
	// DisableAuth).
	Metrics       http.Handler
	MetricsPublic bool
	// TracerProvider, when set, traces /fn and /v1 requests; the queue
	// client continues the trace. Nil traces nothing.
	TracerProvider trace.TracerProvider
}

// Server is the HTTP handler of the api role.
type Server struct {
	config Config
	logger *slog.Logger
	mux    *http.ServeMux
	api    huma.API
	tracer trace.Tracer // nil: tracing is off
}

// New builds the handler.
func New(config Config) *Server {
	if config.Logger == nil {
		config.Logger = slog.Default()
	}
	if config.MaxBodyBytes <= 0 {
		config.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if config.EventHeartbeat <= 0 {
		config.EventHeartbeat = DefaultHeartbeat
	}
	if config.QueueGrace <= 0 {
		config.QueueGrace = 30 * time.Second
	}
	s := &Server{config: config, logger: config.Logger, mux: http.NewServeMux()}
	if config.TracerProvider != nil {
		s.tracer = config.TracerProvider.Tracer(tracerName)
	}

	hc := huma.DefaultConfig("PiCloud", Version)
	hc.Info.Description = "Upload a Lua script, get an HTTP endpoint. Every invocation is a row in PostgreSQL."
	// The default hook adds a $schema property and a Link header to every
	// response; clients generated from the document do not need them.
	hc.CreateHooks = nil
	// huma's /docs page loads its viewer from a CDN, so it is blank
	// without internet access; ui serves one from the binary instead.
	hc.DocsPath = ""
	describeSecurity(&hc)
	s.api = humago.New(s.mux, hc)
	s.api.UseMiddleware(s.authorize)

	s.registerHealth()
	s.registerFunctions()
	s.registerEnv()
	s.registerSchedules()
	s.registerInvocations()
	s.registerBatch()
	s.registerKeys()
	s.registerStats()
	s.registerVersions()
	s.registerValidate()
	s.registerPatchFunction()
	s.registerEvents()
	s.registerIngress()
	s.registerMetrics()
	s.secureOperations()
	s.mux.Handle(ui.Prefix, ui.Handler())
	s.mux.Handle("GET "+ui.DocsPath, ui.DocsHandler())
	s.mux.Handle("GET /{$}", http.RedirectHandler(ui.Prefix, http.StatusFound))
	// The ServeMux answers unknown paths with plain text; the catch-all keeps
	// every error of the API in problem+json.
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusNotFound, "no route for "+r.Method+" "+r.URL.Path, nil)
	})
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.serveTraced(w, r, s.mux) }

// OpenAPI returns the API's OpenAPI 3.1 document.
func (s *Server) OpenAPI() *huma.OpenAPI { return s.api.OpenAPI() }

// writeProblem writes an RFC 9457 problem document, shaped like huma's own
// errors, for the handlers that do not go through huma.
func writeProblem(w http.ResponseWriter, status int, detail string, header http.Header) {
	for k, v := range header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(&huma.ErrorModel{
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
	})
}
