package httpapi

import (
	"net/http"
	"strconv"

	"starling.dev/starling/internal/health"
)

// readyTimeout bounds all readiness checks together.
const readyTimeout = health.DefaultTimeout

// healthz answers while the process can serve HTTP at all.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	s.probes().Healthz(w, r)
}

// readyz answers 200 when every readiness check passes within readyTimeout,
// and otherwise a not-ready problem naming each failed check.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	s.probes().Readyz(w, r)
}

// probes builds the probe handler from Config.Ready, whose checks are
// unnamed: each is called "check <index>". Building it per probe costs a
// few small allocations every few seconds and keeps Config.Ready's type.
func (s *server) probes() *health.Handler {
	checks := make([]health.Check, len(s.cfg.Ready))
	for i, f := range s.cfg.Ready {
		checks[i] = health.Check{Name: "check " + strconv.Itoa(i), Func: f}
	}
	h, err := health.New(health.Config{
		Checks: checks, Timeout: readyTimeout, ProblemType: typeNotReady, Logger: s.log,
	})
	if err != nil {
		// Config.Validate refuses nil checks, the only way New can fail here.
		panic("httpapi: probes: " + err.Error())
	}
	return h
}
