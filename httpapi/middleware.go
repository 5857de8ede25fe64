package httpapi

import (
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// unmatchedRoute labels requests no route matched, so that scanners probing
// random paths cannot grow the metrics without bound.
const unmatchedRoute = "unmatched"

// observe writes one log line and the metrics of every request. It logs the
// route pattern, never the path, query or headers, so no token can leak, and
// the client address as resolveClient found it (behind a trusted proxy, the
// forwarded one).
func (s *server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		if id := middleware.GetReqID(r.Context()); id != "" {
			ww.Header().Set(middleware.RequestIDHeader, id)
		}
		next.ServeHTTP(ww, r)
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		route, took := routePattern(r), time.Since(start)
		s.metrics.observe(route, status, took)
		level := levelFor(status)
		if !s.log.Enabled(r.Context(), level) {
			return
		}
		s.log.LogAttrs(r.Context(), level, "http request",
			slog.String("method", r.Method),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Duration("duration", took),
			slog.String("client_ip", clientString(r)),
			slog.String("request_id", middleware.GetReqID(r.Context())))
	})
}

// routePattern is the pattern of the route that served r, once it has.
func routePattern(r *http.Request) string {
	rctx := chi.RouteContext(r.Context())
	if rctx == nil || rctx.RoutePattern() == "" || rctx.RoutePattern() == "/*" {
		return unmatchedRoute
	}
	return rctx.RoutePattern()
}

// levelFor is the level of a request's log line: a server error warns, a
// refused request informs, and a served one is a debug line. At thousands
// of posts a second, a line per success cost 15 % of the handler; the
// request metrics count them all, and STARLING_LOG_LEVEL=debug logs them.
func levelFor(status int) slog.Level {
	switch {
	case status >= http.StatusInternalServerError:
		return slog.LevelWarn
	case status >= http.StatusBadRequest:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// recoverer turns a panicking handler into a logged 500 problem.
func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			rec := recover()
			if rec == nil {
				return
			}
			if rec == http.ErrAbortHandler {
				panic(rec) // the client is gone; net/http handles this one
			}
			s.log.ErrorContext(r.Context(), "httpapi: handler panicked", "panic", rec,
				"stack", string(debug.Stack()), "request_id", middleware.GetReqID(r.Context()))
			if ww, ok := w.(middleware.WrapResponseWriter); ok && ww.Status() != 0 {
				return // the status line is out; the client sees a cut response
			}
			writeProblem(w, internalError())
		}()
		next.ServeHTTP(w, r)
	})
}
