package api

import (
	"errors"
	"net/http"

	"github.com/picloud/picloud/keys"
)

// registerMetrics serves config.Metrics at /metrics. It is a plain handler
// outside the OpenAPI document: its format is Prometheus's, and scrapers,
// not API clients, read it.
//
// The metrics name every deployed function, so on the API address they need
// an admin key (Prometheus sends one with authorization.credentials_file),
// unless MetricsPublic says the address is private anyway. --metrics-addr
// and a worker's health address serve them without a key.
func (s *Server) registerMetrics() {
	if s.config.Metrics == nil {
		return
	}
	s.mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if !s.config.MetricsPublic && !s.config.DisableAuth && !s.requireAdmin(w, r) {
			return
		}
		s.config.Metrics.ServeHTTP(w, r)
	})
}

// requireAdmin answers 401 or 403 and reports false unless the request
// carries an admin key; the huma middleware does the same for /v1.
func (s *Server) requireAdmin(w http.ResponseWriter, r *http.Request) bool {
	challenge := http.Header{"Www-Authenticate": {`Bearer realm="picloud"`}}
	key, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		writeProblem(w, http.StatusUnauthorized, "/metrics needs an admin API key: send Authorization: Bearer <key>", challenge)
		return false
	}
	scope, err := s.config.Keys.Authenticate(r.Context(), key)
	if errors.Is(err, keys.ErrUnauthenticated) {
		writeProblem(w, http.StatusUnauthorized, "the API key is unknown or revoked", challenge)
		return false
	}
	if err != nil {
		s.logger.ErrorContext(r.Context(), "check API key", "error", err)
		writeProblem(w, http.StatusInternalServerError, "could not check the API key; the server log has the details", nil)
		return false
	}
	if !scope.Allows(keys.ScopeAdmin) {
		writeProblem(w, http.StatusForbidden, "/metrics needs a key with the admin scope; this key has "+string(scope), nil)
		return false
	}
	return true
}
