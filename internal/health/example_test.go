package health_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"starling.dev/starling/internal/health"
)

// The gateway's probes: NATS and Redis gate readiness, and the component's
// link is reported alongside.
func ExampleNew() {
	h, err := health.New(health.Config{
		Checks: []health.Check{
			{Name: "nats", Func: func(context.Context) error { return nil }},
			{Name: "redis", Func: func(context.Context) error { return errors.New("connection refused") }},
		},
		Extra: func() map[string]any { return map[string]any{"xmpp_connected": false} },
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", h)
	mux.Handle("GET /readyz", h)
	for _, path := range []string{"/healthz", "/readyz"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		fmt.Print(rec.Code, " ", rec.Body)
	}
	// Output:
	// 200 {"status":"ok"}
	// 503 {"detail":"failing: redis: connection refused","status":503,"title":"Not ready","type":"https://starling.dev/problems/not-ready","xmpp_connected":false}
}
