package httpapi

import (
	"net/http"

	"starling.dev/starling/internal/health"
)

// readyTimeout bounds all readiness checks together.
const readyTimeout = health.DefaultTimeout

// healthz answers while the process can serve HTTP at all.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	s.probes.Healthz(w, r)
}

// readyz answers 200 when every readiness check passes within readyTimeout,
// and otherwise a not-ready problem naming each failed check.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	s.probes.Readyz(w, r)
}
