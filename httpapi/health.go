package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// readyTimeout bounds all readiness checks together.
const readyTimeout = 2 * time.Second

// healthz answers while the process can serve HTTP at all.
func (s *server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 when every readiness check passes within readyTimeout.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	failures := s.runReadyChecks(r.Context())
	if len(failures) == 0 {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		return
	}
	s.log.WarnContext(r.Context(), "httpapi: not ready", "failures", failures)
	writeProblem(w, typed(typeNotReady, "Not ready", http.StatusServiceUnavailable,
		"failing: "+strings.Join(failures, "; ")))
}

// runReadyChecks runs the checks concurrently and describes, in order, each
// one that failed or did not answer in time. A check that ignores its context
// is left to finish on its own; it reports into a buffered channel, so its
// goroutine still exits.
func (s *server) runReadyChecks(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	results := make([]chan error, len(s.cfg.Ready))
	for i, check := range s.cfg.Ready {
		results[i] = make(chan error, 1)
		go func() { results[i] <- check(ctx) }()
	}
	var failures []string
	for i, result := range results {
		if err := awaitCheck(ctx, result); err != nil {
			failures = append(failures, fmt.Sprintf("check %d: %v", i, err))
		}
	}
	return failures
}

// awaitCheck returns a check's result, or an error once ctx is done.
func awaitCheck(ctx context.Context, result <-chan error) error {
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-result:
		return err
	default:
		return fmt.Errorf("no answer within %s", readyTimeout)
	}
}
