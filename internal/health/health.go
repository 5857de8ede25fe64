// Package health serves the probes both processes answer: GET /healthz
// (the process can serve HTTP at all) and GET /readyz (every named check,
// such as "nats" or "redis", passes). Kubernetes probes and operators read
// them; a failing /readyz names the checks that failed.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// DefaultTimeout bounds all checks of one /readyz request when
// Config.Timeout is zero: well under a Kubernetes probe's timeout.
const DefaultTimeout = 2 * time.Second

// DefaultProblemType is the RFC 9457 problem type of a failed /readyz when
// Config.ProblemType is empty.
const DefaultProblemType = "https://starling.dev/problems/not-ready"

// Check is one named dependency test, such as a NATS or Redis round trip.
type Check struct {
	// Name appears in the answer when the check fails; required, unique.
	Name string
	// Func returns nil when the dependency answers. It should honour ctx;
	// one that does not is reported as timed out and left to finish.
	Func func(ctx context.Context) error
}

// Config configures a Handler.
type Config struct {
	// Checks run concurrently on every /readyz; none means always ready.
	Checks []Check
	// Timeout bounds all checks together; zero means DefaultTimeout.
	Timeout time.Duration
	// Extra, if not nil, supplies further fields of every /readyz answer,
	// such as the gateway's "xmpp_connected"; fields the handler writes
	// itself win over them. Nil means none.
	Extra func() map[string]any
	// ProblemType is the type URI of the 503 answer; empty means
	// DefaultProblemType.
	ProblemType string
	// Logger receives a warning for every failed /readyz; nil discards.
	Logger *slog.Logger
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if c.Timeout < 0 {
		return errors.New("health: Timeout must not be negative")
	}
	seen := map[string]bool{}
	for i, ch := range c.Checks {
		switch {
		case ch.Name == "":
			return fmt.Errorf("health: check %d has no name", i)
		case ch.Func == nil:
			return fmt.Errorf("health: check %q has no Func", ch.Name)
		case seen[ch.Name]:
			return fmt.Errorf("health: two checks named %q", ch.Name)
		}
		seen[ch.Name] = true
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ProblemType == "" {
		c.ProblemType = DefaultProblemType
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Handler answers GET /healthz and GET /readyz. Mount it on both paths (its
// ServeHTTP tells them apart by the path's last element), or route to
// Healthz and Readyz yourself.
type Handler struct {
	cfg Config
}

// New returns the probe handler.
func New(cfg Config) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Handler{cfg: cfg.withDefaults()}, nil
}

// ServeHTTP serves Readyz for a path ending in "/readyz" and Healthz for any
// other, so a router decides which paths reach the handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/readyz") {
		h.Readyz(w, r)
		return
	}
	h.Healthz(w, r)
}

// Healthz answers 200 {"status":"ok"} while the process serves HTTP.
func (h *Handler) Healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, "application/json", http.StatusOK, map[string]any{"status": "ok"})
}

// Failure is a check that failed or did not answer in time.
type Failure struct {
	Check string // the check's name
	Error string // why it failed
}

// Readyz runs the checks and answers 200 {"status":"ready", extra...}, or
// 503 application/problem+json whose detail names each failed check and
// its error, in Config order ("failing: redis: connection refused"), with
// the extra fields too. The failures are not a separate member: the HTTP
// API's OpenAPI document allows a problem no members beyond RFC 9457's.
func (h *Handler) Readyz(w http.ResponseWriter, r *http.Request) {
	failing := h.Run(r.Context())
	body := map[string]any{}
	if h.cfg.Extra != nil {
		for k, v := range h.cfg.Extra() {
			body[k] = v
		}
	}
	if len(failing) == 0 {
		body["status"] = "ready"
		writeJSON(w, "application/json", http.StatusOK, body)
		return
	}
	h.cfg.Logger.WarnContext(r.Context(), "not ready", "failing", failing)
	details := make([]string, len(failing))
	for i, f := range failing {
		details[i] = f.Check + ": " + f.Error
	}
	body["type"] = h.cfg.ProblemType
	body["title"] = "Not ready"
	body["status"] = http.StatusServiceUnavailable
	body["detail"] = "failing: " + strings.Join(details, "; ")
	writeJSON(w, "application/problem+json", http.StatusServiceUnavailable, body)
}

// Run runs every check concurrently under Config.Timeout and returns the
// failures in Config order; none means ready. A check that ignores its
// context is reported as timed out and left to finish on its own: it
// reports into a buffered channel, so its goroutine still exits.
func (h *Handler) Run(ctx context.Context) []Failure {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	results := make([]chan error, len(h.cfg.Checks))
	for i, check := range h.cfg.Checks {
		results[i] = make(chan error, 1)
		go func() { results[i] <- check.Func(ctx) }()
	}
	var failing []Failure
	for i, result := range results {
		if err := h.await(ctx, result); err != nil {
			failing = append(failing, Failure{Check: h.cfg.Checks[i].Name, Error: err.Error()})
		}
	}
	return failing
}

// await returns a check's result, or an error once ctx is done and the
// check has still not answered.
func (h *Handler) await(ctx context.Context, result <-chan error) error {
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-result:
		return err
	default:
		return fmt.Errorf("no answer within %s", h.cfg.Timeout)
	}
}

func writeJSON(w http.ResponseWriter, contentType string, status int, v any) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store") // a probe must see the present
	w.WriteHeader(status)
	// The status line is out; a failed write means the client went away.
	_ = json.NewEncoder(w).Encode(v)
}
