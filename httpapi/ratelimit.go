package httpapi

import (
	"errors"
	"math"
	"net"
	"net/http"
	"strconv"
	"time"

	"starling.dev/starling/internal/ratelimit"
)

// Default rate limits, the one place they are written (cmd/api's flags use
// them): generous enough for scripts and end-to-end tests that post dozens
// of times a second from one address, tight enough that one client cannot
// monopolise the API or guess tokens at speed. RateLimits' zero value is
// not these defaults but no limit at all.
const (
	DefaultIPRate     = 100 // requests per second per client IP
	DefaultIPBurst    = 200
	DefaultTokenRate  = 50 // requests per second per bearer token
	DefaultTokenBurst = 100
)

// maxLimiterKeys bounds the buckets of each keyed limiter (see
// ratelimit.Config.MaxKeys).
const maxLimiterKeys = ratelimit.DefaultMaxKeys

// RateLimits are token buckets per client IP and per bearer token. The zero
// value limits nothing; DefaultIPRate and its siblings are the limits a
// deployment usually wants.
type RateLimits struct {
	// IPPerSecond is the sustained request rate of one client IP; zero
	// means no limit per IP.
	IPPerSecond float64
	// IPBurst is how many requests one IP may make at once; zero means
	// IPPerSecond rounded up, at least 1.
	IPBurst int
	// TokenPerSecond is the sustained request rate of one bearer token
	// (valid or not); zero means no limit per token.
	TokenPerSecond float64
	// TokenBurst is how many requests one token may make at once; zero
	// means TokenPerSecond rounded up, at least 1.
	TokenBurst int
}

// Validate reports whether the limits are usable.
func (l RateLimits) Validate() error {
	if l.IPBurst < 0 || l.TokenBurst < 0 {
		return errors.New("httpapi: rate limit bursts must not be negative")
	}
	if bad := func(r float64) bool { return math.IsNaN(r) || math.IsInf(r, 0) || r < 0 }; bad(l.IPPerSecond) || bad(l.TokenPerSecond) {
		return errors.New("httpapi: rate limits must be finite and not negative (zero means no limit)")
	}
	return nil
}

func (l RateLimits) withDefaults() RateLimits {
	l.IPBurst = defaultBurst(l.IPPerSecond, l.IPBurst)
	l.TokenBurst = defaultBurst(l.TokenPerSecond, l.TokenBurst)
	return l
}

// defaultBurst is burst, or when it is zero the rate rounded up (at least
// 1, at most math.MaxInt32): a bucket that holds one second's requests.
func defaultBurst(perSecond float64, burst int) int {
	if burst != 0 {
		return burst
	}
	return max(1, int(math.Min(math.Ceil(perSecond), math.MaxInt32)))
}

// limiters holds the two keyed limiters; a nil one is off.
type limiters struct {
	ip, token *keyedLimiter
}

func newLimiters(l RateLimits) *limiters {
	ls := &limiters{}
	if l.IPPerSecond > 0 {
		ls.ip = newKeyedLimiter(l.IPPerSecond, l.IPBurst)
	}
	if l.TokenPerSecond > 0 {
		ls.token = newKeyedLimiter(l.TokenPerSecond, l.TokenBurst)
	}
	return ls
}

// keyedLimiter is one token bucket per key (see ratelimit); memory is
// bounded by maxLimiterKeys.
type keyedLimiter struct{ keyed *ratelimit.Limiter }

// newKeyedLimiter takes a positive rate and a positive burst, as
// RateLimits.Validate and withDefaults leave them; anything else is a bug.
func newKeyedLimiter(perSecond float64, burst int) *keyedLimiter {
	l, err := ratelimit.New(ratelimit.Config{Rate: perSecond, Burst: burst, MaxKeys: maxLimiterKeys})
	if err != nil {
		panic("httpapi: rate limiter: " + err.Error())
	}
	return &keyedLimiter{keyed: l}
}

// wait takes one token for key and returns zero, or how long the client
// must wait before the request would be allowed (at least a second, the
// unit of Retry-After).
func (k *keyedLimiter) wait(key string) time.Duration {
	d := k.keyed.Take(key)
	if d.Verdict == ratelimit.Allowed {
		return 0
	}
	return max(d.RetryAfter, time.Second)
}

// rateLimit answers 429 with Retry-After when the client IP or the bearer
// token has used up its bucket. Tokens are keyed by their hash, so no token
// is kept in memory.
func (s *server) rateLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.limits.ip != nil {
			if d := s.limits.ip.wait(clientIP(r)); d > 0 {
				s.tooMany(w, "ip", "address", d)
				return
			}
		}
		if token, ok := bearerToken(r); ok && s.limits.token != nil {
			if d := s.limits.token.wait(hashToken(token)); d > 0 {
				s.tooMany(w, "token", "token", d)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) tooMany(w http.ResponseWriter, limit, what string, d time.Duration) {
	s.metrics.rateLimited.WithLabelValues(limit).Inc()
	secs := int(math.Ceil(d.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeProblem(w, blank(http.StatusTooManyRequests,
		"too many requests from this "+what+"; retry after "+strconv.Itoa(secs)+" s"))
}

// clientIP is the address the connection comes from. Forwarded headers are
// not trusted: anyone can send them.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
