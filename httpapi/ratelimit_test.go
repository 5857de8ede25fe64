package httpapi

import (
	"math"
	"net/http"
	"strconv"
	"testing"
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
	tok := bearer("stl_some-token")
	get("192.0.2.2:1", tok)
	get("192.0.2.3:1", tok)
	wantProblem(t, get("192.0.2.4:1", tok), 429, typeBlank, "too many requests from this token")
	// Probes are never limited.
	for range 5 {
		if rec := e.doFrom(t, "192.0.2.1:1", request{method: http.MethodGet, path: "/healthz"}); rec.Code != http.StatusOK {
			t.Fatalf("healthz limited: %d", rec.Code)
		}
	}
	e.wantCounter(t, "starling_httpapi_rate_limited_total", map[string]string{"limit": "ip"}, 1)
	e.wantCounter(t, "starling_httpapi_rate_limited_total", map[string]string{"limit": "token"}, 1)
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
