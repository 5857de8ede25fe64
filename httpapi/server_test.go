package httpapi

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"starling.dev/starling/internal/health"
)

func TestConfigValidate(t *testing.T) {
	ok := func(context.Context) error { return nil }
	cases := []struct {
		name string
		cfg  Config
		err  string
	}{
		{"minimal", Config{Domain: testDomain}, ""},
		{"full", Config{Domain: testDomain, AdminToken: "x", MaxPostChars: 280, Ready: []health.Check{{Name: "ok", Func: ok}}}, ""},
		{"no domain", Config{}, "Domain is required"},
		{"domain with localpart", Config{Domain: "a@b"}, "not a domain"},
		{"negative max", Config{Domain: testDomain, MaxPostChars: -1}, "MaxPostChars"},
		{"nil check", Config{Domain: testDomain, Ready: []health.Check{{Name: "ok", Func: ok}, {Name: "broken"}}}, "Ready"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestNewRequiresDependencies(t *testing.T) {
	cfg := Config{Domain: testDomain}
	dead := deadRedisStore(t)
	if _, err := New(nil, dead, &fakePublisher{}, cfg); err == nil {
		t.Error("New accepted nil Accounts")
	}
	if _, err := New(dead, nil, &fakePublisher{}, cfg); err == nil {
		t.Error("New accepted nil Followers")
	}
	if _, err := New(dead, dead, nil, cfg); err == nil {
		t.Error("New accepted nil Publisher")
	}
	if _, err := New(dead, dead, &fakePublisher{}, Config{}); err == nil {
		t.Error("New accepted an invalid Config")
	}
}

func TestMaxPostCharsConfig(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, func(c *Config) { c.MaxPostChars = 5 })
	token := e.createUser(t, "alice")
	acceptedID(t, e.post(t, token, "", "héllo"))
	wantProblem(t, e.post(t, token, "", "héllo!"), 422, typeInvalidText, "6 characters; the limit is 5")
}

func TestUnknownRouteAndMethod(t *testing.T) {
	e := newAPI(t, deadRedisStore(t), &fakePublisher{}, nil)
	cases := []struct {
		method, path string
		status       int
		allow        string
	}{
		{http.MethodGet, "/nope", 404, ""},
		{http.MethodGet, "/v1/users/alice/extra", 404, ""},
		{http.MethodGet, "/v1/statuses", 405, "POST"},
		{http.MethodPut, "/v1/users/alice", 405, "GET, PATCH, DELETE"},
		{http.MethodGet, "/v1/users/alice/token", 405, "POST"},
		{http.MethodPost, "/v1/statuses/01JAAAAAAAAAAAAAAAAAAAAAAA", 405, "GET, DELETE"},
		{http.MethodPut, "/v1/users", 405, "POST"},
		{http.MethodPost, "/healthz", 405, "GET"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			rec := e.do(t, request{method: tc.method, path: tc.path})
			wantProblem(t, rec, tc.status, typeBlank, "")
			if got := rec.Header().Get("Allow"); got != tc.allow {
				t.Fatalf("Allow = %q, want %q", got, tc.allow)
			}
		})
	}
}

func TestPanicIsProblem500(t *testing.T) {
	e := newAPI(t, panickingProfile{deadRedisStore(t)}, &fakePublisher{}, nil)
	wantProblem(t, e.do(t, request{method: http.MethodGet, path: "/v1/users/alice"}), 500, typeBlank, "logged")
	logs := e.logs.String()
	if !strings.Contains(logs, "profile exploded") || !strings.Contains(logs, `"status":500`) {
		t.Fatalf("panic or its 500 not logged: %s", logs)
	}
	// The server keeps serving.
	if rec := e.do(t, request{method: http.MethodGet, path: "/healthz"}); rec.Code != http.StatusOK {
		t.Fatalf("healthz after panic: %d", rec.Code)
	}
}

// TestRequestLog checks the log line of a request and that no token reaches
// the log, not even from a failed authentication.
func TestRequestLog(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, nil)
	token := e.createUser(t, "alice")
	rec := e.do(t, request{method: http.MethodPost, path: "/v1/statuses", body: `{"text":"hi"}`,
		header: map[string]string{"Authorization": "Bearer " + token, "X-Request-Id": "req-42"}})
	acceptedID(t, rec)
	if got := rec.Header().Get("X-Request-Id"); got != "req-42" {
		t.Fatalf("X-Request-Id = %q", got)
	}
	e.post(t, "stl_wrong-secret", "", "hi")
	logs := e.logs.String()
	for _, want := range []string{`"method":"POST"`, `"route":"/v1/statuses"`, `"status":202`, `"status":401`, `"request_id":"req-42"`, `"duration":`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	for _, secret := range []string{token, testAdminToken, "stl_wrong-secret", hashToken(token), "Bearer"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
}
