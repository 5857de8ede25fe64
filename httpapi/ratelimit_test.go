package httpapi

import (
	"crypto/sha256"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRateLimits(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, func(c *Config) {
		c.RateLimits = RateLimits{IPPerSecond: 0.001, IPBurst: 3, TokenPerSecond: 0.001, TokenBurst: 2}
	})
	get := func(ip string, h map[string]string) *responseRecorder {
		rec := e.doFrom(t, ip, request{method: http.MethodGet, path: "/v1/users/nobody", header: h})
		return rec
	}
	for range 3 {
		if rec := get("192.0.2.1:1000", nil); rec.Code != http.StatusNotFound {
			t.Fatalf("within the burst: %d", rec.Code)
		}
	}
	rec := get("192.0.2.1:1001", nil)
	wantProblem(t, rec, 429, typeBlank, "too many requests from this address")
	if s, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("Retry-After = %q", rec.Header().Get("Retry-After"))
	}
	// Another address has its own bucket; a token has one across addresses.
	tok := bearer(newToken())
	get("192.0.2.2:1", tok)
	get("192.0.2.3:1", tok)
	rec = get("192.0.2.4:1", tok)
	wantProblem(t, rec, 429, typeBlank, "too many requests from this token")
	if s, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("Retry-After = %q", rec.Header().Get("Retry-After"))
	}
	// Probes are never limited.
	for range 5 {
		if rec := e.doFrom(t, "192.0.2.1:1", request{method: http.MethodGet, path: "/healthz"}); rec.Code != http.StatusOK {
			t.Fatalf("healthz limited: %d", rec.Code)
		}
	}
	e.wantCounter(t, "starling_httpapi_rate_limited_total", map[string]string{"limit": "ip"}, 1)
	e.wantCounter(t, "starling_httpapi_rate_limited_total", map[string]string{"limit": "token"}, 1)
}

// An application server posting for many users from one address is limited
// per token, not as one client; what it sends without a token is limited
// per address all the same.
func TestRateLimitsPerTokenNotPerIP(t *testing.T) {
	const users = 20
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, func(c *Config) {
		c.RateLimits = RateLimits{IPPerSecond: 0.001, IPBurst: 3, TokenPerSecond: 0.001, TokenBurst: 2}
	})
	tokens := make([]string, users)
	for i := range tokens {
		tokens[i] = newToken()
		if err := e.store.CreateUser(t.Context(), "user"+strconv.Itoa(i), "User", hashToken(tokens[i]), testClock); err != nil {
			t.Fatal(err)
		}
	}
	const app = "192.0.2.10:4000"
	post := func(token string) *responseRecorder {
		return e.doFrom(t, app, request{method: http.MethodPost, path: "/v1/statuses",
			body: `{"text":"hello"}`, header: bearer(token)})
	}
	for round := range 2 {
		for i, tok := range tokens {
			if rec := post(tok); rec.Code != http.StatusAccepted {
				t.Fatalf("round %d, user %d: %d %s", round, i, rec.Code, rec.Body)
			}
		}
	}
	wantProblem(t, post(tokens[0]), 429, typeBlank, "too many requests from this token")
	// The address's own bucket is untouched by all that, and still applies
	// to requests without a well-formed token.
	for i, h := range []map[string]string{nil, bearer("not-a-starling-token"), {"Authorization": "Basic dXNlcjpwdw=="}} {
		if rec := e.doFrom(t, app, request{method: http.MethodGet, path: "/v1/users/nobody", header: h}); rec.Code != http.StatusNotFound {
			t.Fatalf("unauthenticated request %d: %d", i, rec.Code)
		}
	}
	wantProblem(t, e.doFrom(t, app, request{method: http.MethodGet, path: "/v1/users/nobody"}),
		429, typeBlank, "too many requests from this address")
	// The admin token has a bucket of its own too.
	for range 2 {
		if rec := e.doFrom(t, app, request{method: http.MethodGet, path: "/v1/users/user1", header: bearer(testAdminToken)}); rec.Code != http.StatusOK {
			t.Fatalf("admin: %d", rec.Code)
		}
	}
	e.wantCounter(t, "starling_httpapi_rate_limited_total", map[string]string{"limit": "ip"}, 1)
	e.wantCounter(t, "starling_httpapi_rate_limited_total", map[string]string{"limit": "token"}, 1)
}

// Well-formed tokens that turn out not to be valid are charged to the
// address: guessing with new tokens does not buy new buckets.
func TestRateLimitsFailedTokensChargeAddress(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, func(c *Config) {
		c.RateLimits = RateLimits{IPPerSecond: 0.001, IPBurst: 3, TokenPerSecond: 0.001, TokenBurst: 2}
	})
	valid := newToken()
	if err := e.store.CreateUser(t.Context(), "alice", "Alice", hashToken(valid), testClock); err != nil {
		t.Fatal(err)
	}
	const guesser = "192.0.2.20:1"
	post := func(from, token string) *responseRecorder {
		return e.doFrom(t, from, request{method: http.MethodPost, path: "/v1/statuses",
			body: `{"text":"hello"}`, header: bearer(token)})
	}
	// The address's burst is 3; the fourth failure, answered before it is
	// charged, finds the bucket empty. From then on the address is refused
	// whatever token it brings, valid ones included.
	for range 4 {
		wantProblem(t, post(guesser, newToken()), 401, typeBlank, "not valid")
	}
	rec := post(guesser, newToken())
	wantProblem(t, rec, 429, typeBlank, "too many requests from this address")
	if s, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("Retry-After = %q", rec.Header().Get("Retry-After"))
	}
	wantProblem(t, post(guesser, valid), 429, typeBlank, "too many requests from this address")
	wantProblem(t, e.doFrom(t, guesser, request{method: http.MethodGet, path: "/v1/users/alice"}),
		429, typeBlank, "too many requests from this address")
	// Elsewhere the valid token still works.
	if rec := post("192.0.2.21:1", valid); rec.Code != http.StatusAccepted {
		t.Fatalf("valid token from another address: %d %s", rec.Code, rec.Body)
	}
}

func TestLooksLikeToken(t *testing.T) {
	s := &server{cfg: Config{AdminToken: testAdminToken}}
	s.adminHash = sha256.Sum256([]byte(testAdminToken))
	for _, c := range []struct {
		token string
		want  bool
	}{
		{token: newToken(), want: true},
		{token: testAdminToken, want: true},
		{token: "stl_" + strings.Repeat("A", 43), want: true},
		{token: "stl_" + strings.Repeat("A", 42), want: false},
		{token: "stl_" + strings.Repeat("A", 44), want: false},
		{token: "stl_" + strings.Repeat("A", 42) + "=", want: false},
		{token: "stl_" + strings.Repeat("A", 42) + "/", want: false},
		{token: "xyz_" + strings.Repeat("A", 43), want: false},
		{token: "stl_some-token", want: false},
		{token: "", want: false},
	} {
		if got := s.looksLikeToken(c.token); got != c.want {
			t.Errorf("looksLikeToken(%q) = %v, want %v", c.token, got, c.want)
		}
	}
}

func TestPenaltiesBounded(t *testing.T) {
	now := testClock
	p := newPenalties(4, func() time.Time { return now })
	for i := range 4 {
		p.refuse(strconv.Itoa(i), time.Minute)
	}
	if d := p.wait("0"); d != time.Minute {
		t.Fatalf("wait = %v, want a minute", d)
	}
	p.refuse("4", time.Minute) // full, nothing expired: all forgotten
	if n := p.len(); n != 1 {
		t.Fatalf("%d addresses held, want 1", n)
	}
	now = now.Add(2 * time.Minute)
	if d := p.wait("4"); d != 0 {
		t.Fatalf("expired penalty still refuses for %v", d)
	}
	for i := range 3 {
		p.refuse("a"+strconv.Itoa(i), time.Second)
	}
	p.refuse("b", time.Hour)
	now = now.Add(time.Minute)
	p.refuse("c", time.Hour) // full: the expired ones go
	if n := p.len(); n != 2 {
		t.Fatalf("%d addresses held, want 2", n)
	}
	if p.wait("b") == 0 || p.wait("c") == 0 {
		t.Fatal("live penalties were forgotten")
	}
	if d := p.wait("c"); d < time.Second {
		t.Fatalf("wait %v is shorter than Retry-After's unit", d)
	}
}

func TestRateLimitsOff(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, func(c *Config) {
		c.RateLimits = RateLimits{} // zero rates mean no limit
	})
	for range 300 {
		if rec := e.do(t, request{method: http.MethodGet, path: "/v1/users/nobody"}); rec.Code != http.StatusNotFound {
			t.Fatalf("limited although off: %d", rec.Code)
		}
	}
}

func TestKeyedLimiterEvicts(t *testing.T) {
	k := newKeyedLimiter(0.001, 1) // nobody's bucket refills during the test
	for i := range maxLimiterKeys + 10 {
		k.wait(strconv.Itoa(i))
	}
	if n := k.keyed.Len(); n > maxLimiterKeys {
		t.Fatalf("%d buckets kept; the limiter grows without bound", n)
	}
}

func TestRateLimitsValidate(t *testing.T) {
	for _, l := range []RateLimits{{IPBurst: -1}, {IPPerSecond: math.NaN()}, {TokenPerSecond: math.Inf(1)}, {IPPerSecond: -1}} {
		if l.Validate() == nil {
			t.Errorf("%+v accepted", l)
		}
	}
}

func TestDefaultBurst(t *testing.T) {
	for _, c := range []struct {
		rate        float64
		burst, want int
	}{
		{rate: 0, burst: 0, want: 1},
		{rate: 0.001, burst: 0, want: 1},
		{rate: 2.5, burst: 0, want: 3},
		{rate: 50, burst: 7, want: 7},
		{rate: math.MaxFloat64, burst: 0, want: math.MaxInt32},
	} {
		if got := defaultBurst(c.rate, c.burst); got != c.want {
			t.Errorf("defaultBurst(%g, %d) = %d, want %d", c.rate, c.burst, got, c.want)
		}
	}
}
