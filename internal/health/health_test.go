package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"
)

func get(t *testing.T, h http.Handler, path string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%s: body %q: %v", path, rec.Body, err)
	}
	return rec, body
}

func TestHealthz(t *testing.T) {
	fail := func(context.Context) error { return errors.New("down") }
	h, err := New(Config{Checks: []Check{{"redis", fail}}})
	if err != nil {
		t.Fatal(err)
	}
	rec, body := get(t, h, "/healthz")
	if rec.Code != http.StatusOK || body["status"] != "ok" || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("healthz = %d %v; liveness must not depend on the checks", rec.Code, body)
	}
}

func TestReadyz(t *testing.T) {
	pass := func(context.Context) error { return nil }
	fail := func(context.Context) error { return errors.New("connection refused") }
	// hang ignores its context, like a check stuck in a call without one.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hang := func(context.Context) error { <-release; return nil }
	cases := []struct {
		name    string
		checks  []Check
		failing []Failure // nil means ready
	}{
		{"no checks", nil, nil},
		{"all pass", []Check{{"nats", pass}, {"redis", pass}}, nil},
		{"one fails", []Check{{"nats", pass}, {"redis", fail}}, []Failure{{"redis", "connection refused"}}},
		{"in order", []Check{{"a", fail}, {"b", pass}, {"c", fail}}, []Failure{{"a", "connection refused"}, {"c", "connection refused"}}},
		{"one hangs", []Check{{"nats", hang}, {"redis", pass}}, []Failure{{"nats", "no answer within 100ms"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := New(Config{
				Checks:  tc.checks,
				Timeout: 100 * time.Millisecond,
				Extra:   func() map[string]any { return map[string]any{"xmpp_connected": true, "status": "overridden?"} },
			})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			rec, body := get(t, h, "/readyz")
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("readyz took %s", took)
			}
			if body["xmpp_connected"] != true {
				t.Errorf("extra field missing: %v", body)
			}
			if tc.failing == nil {
				if rec.Code != http.StatusOK || body["status"] != "ready" {
					t.Fatalf("readyz = %d %v", rec.Code, body)
				}
				return
			}
			if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Fatalf("readyz = %d %s", rec.Code, rec.Header().Get("Content-Type"))
			}
			if body["type"] != DefaultProblemType || body["title"] != "Not ready" || body["status"] != float64(503) {
				t.Fatalf("problem fields: %v", body)
			}
			if got := h.Run(context.Background()); !reflect.DeepEqual(got, tc.failing) {
				t.Fatalf("failing = %+v, want %+v", got, tc.failing)
			}
			detail := "failing: "
			for i, f := range tc.failing {
				if i > 0 {
					detail += "; "
				}
				detail += f.Check + ": " + f.Error
			}
			if body["detail"] != detail {
				t.Fatalf("detail = %q, want %q", body["detail"], detail)
			}
		})
	}
}

func TestChecksRunConcurrently(t *testing.T) {
	// Each check waits for all of them to start: run one at a time, they
	// would all time out.
	const n = 3
	started := make(chan struct{}, n)
	check := func(ctx context.Context) error {
		started <- struct{}{}
		for len(started) < n {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Millisecond):
			}
		}
		return nil
	}
	h, err := New(Config{Checks: []Check{{"a", check}, {"b", check}, {"c", check}}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if f := h.Run(context.Background()); f != nil {
		t.Fatalf("failing: %+v", f)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := func(context.Context) error { return nil }
	for name, cfg := range map[string]Config{
		"no name":  {Checks: []Check{{"", ok}}},
		"no func":  {Checks: []Check{{"nats", nil}}},
		"twice":    {Checks: []Check{{"nats", ok}, {"nats", ok}}},
		"negative": {Timeout: -time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
