package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/picloud/picloud/queue"
)

// Readiness answers /readyz: *queue.Client, whose check is that the
// database answers and is migrated.
type Readiness interface {
	Ready(ctx context.Context) error
}

type healthOutput struct {
	Body struct {
		Status string `json:"status" example:"ok"`
	}
}

// readyTimeout keeps a readiness probe from hanging on a database that does
// not answer; probes expect an answer in a second or so.
const readyTimeout = 2 * time.Second

// NewHealth returns a handler with only /healthz and /readyz, for a worker
// that serves no API but must answer its orchestrator's probes, and
// /metrics when metrics is not nil. The health address is meant for the
// orchestrator's private network, so /metrics needs no key there.
func NewHealth(ready Readiness, logger *slog.Logger, metrics http.Handler) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{config: Config{Ready: ready, Logger: logger, Metrics: metrics, MetricsPublic: true}, logger: logger, mux: http.NewServeMux()}
	hc := huma.DefaultConfig("PiCloud worker", Version)
	hc.CreateHooks = nil
	hc.OpenAPIPath, hc.DocsPath, hc.SchemasPath = "", "", ""
	s.api = humago.New(s.mux, hc)
	s.registerHealth()
	s.registerMetrics()
	return s
}

func (s *Server) registerHealth() {
	register(s.api, huma.Operation{
		OperationID: "healthz",
		Metadata:    map[string]any{"access": accessPublic},
		Method:      http.MethodGet,
		Path:        "/healthz",
		Summary:     "Liveness",
		Description: "Answers 200 while the process is up; it does not touch the database.",
		Tags:        []string{"health"},
	}, func(context.Context, *struct{}) (*healthOutput, error) {
		out := &healthOutput{}
		out.Body.Status = "ok"
		return out, nil
	})
	register(s.api, huma.Operation{
		OperationID: "readyz",
		Metadata:    map[string]any{"access": accessPublic},
		Method:      http.MethodGet,
		Path:        "/readyz",
		Summary:     "Readiness",
		Description: "Answers 200 when the database is reachable and migrated, else 503.",
		Tags:        []string{"health"},
		Errors:      []int{http.StatusServiceUnavailable},
	}, func(ctx context.Context, _ *struct{}) (*healthOutput, error) {
		ctx, cancel := context.WithTimeout(ctx, readyTimeout)
		defer cancel()
		if err := s.config.Ready.Ready(ctx); err != nil {
			if !errors.Is(err, queue.ErrNotMigrated) {
				s.logger.WarnContext(ctx, "not ready", "error", err)
				return nil, huma.Error503ServiceUnavailable("database unreachable")
			}
			return nil, huma.Error503ServiceUnavailable(err.Error())
		}
		out := &healthOutput{}
		out.Body.Status = "ok"
		return out, nil
	})
}
