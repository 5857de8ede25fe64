package httpapi

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"starling.dev/starling/internal/health"
)

func TestHealthz(t *testing.T) {
	e := newAPI(t, deadRedisStore(t), &fakePublisher{}, nil)
	rec := e.do(t, request{method: http.MethodGet, path: "/healthz"})
	if rec.Code != http.StatusOK || rec.Body.String() != "{\"status\":\"ok\"}\n" {
		t.Fatalf("healthz = %d %s", rec.Code, rec.Body)
	}
}

func TestReadyz(t *testing.T) {
	pass := func(context.Context) error { return nil }
	fail := func(context.Context) error { return errors.New("redis: connection refused") }
	// hang ignores its context, like a check stuck in a call without one.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hang := func(context.Context) error { <-release; return nil }
	cases := []struct {
		name   string
		checks []health.Check
		detail string // "" means ready
	}{
		{"no checks", nil, ""},
		{"all pass", []health.Check{{Name: "nats", Func: pass}, {Name: "redis", Func: pass}}, ""},
		{"one fails", []health.Check{{Name: "nats", Func: pass}, {Name: "redis", Func: fail}}, "redis: redis: connection refused"},
		{"one hangs", []health.Check{{Name: "nats", Func: hang}, {Name: "redis", Func: pass}}, "nats: no answer within 2s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newAPI(t, deadRedisStore(t), &fakePublisher{}, func(c *Config) { c.Ready = tc.checks })
			start := time.Now()
			rec := e.do(t, request{method: http.MethodGet, path: "/readyz"})
			if took := time.Since(start); took > readyTimeout+time.Second {
				t.Fatalf("readyz took %s", took)
			}
			if tc.detail == "" {
				if rec.Code != http.StatusOK {
					t.Fatalf("readyz = %d %s", rec.Code, rec.Body)
				}
				return
			}
			wantProblem(t, rec, 503, typeNotReady, tc.detail)
		})
	}
}
