package httpapi

import (
	"errors"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Default rate limits: generous enough for scripts and end-to-end tests that
// post dozens of times a second from one address, tight enough that one
// client cannot monopolise the API or guess tokens at speed.
const (
	defaultIPRate     = 100 // requests per second per client IP
	defaultIPBurst    = 200
	defaultTokenRate  = 50 // requests per second per bearer token
	defaultTokenBurst = 100
	// limiterIdle is how long a client's bucket is kept after its last
	// request; a bucket idle that long is full again anyway.
	limiterIdle = 10 * time.Minute
	// maxLimiterKeys bounds the memory of each keyed limiter; past it the
	// idle buckets are swept at once.
	maxLimiterKeys = 100_000
)

// RateLimits are token buckets per client IP and per bearer token. A rate of
// zero means the default; a negative rate turns that limit off.
type RateLimits struct {
	// IPPerSecond is the sustained request rate of one client IP; zero means 100.
	IPPerSecond float64
	// IPBurst is how many requests one IP may make at once; zero means 200.
	IPBurst int
	// TokenPerSecond is the sustained request rate of one bearer token
	// (valid or not); zero means 50.
	TokenPerSecond float64
	// TokenBurst is how many requests one token may make at once; zero means 100.
	TokenBurst int
}

// Validate reports whether the limits are usable.
func (l RateLimits) Validate() error {
	if l.IPBurst < 0 || l.TokenBurst < 0 {
		return errors.New("httpapi: rate limit bursts must not be negative")
	}
	if math.IsNaN(l.IPPerSecond) || math.IsNaN(l.TokenPerSecond) {
		return errors.New("httpapi: rate limits must be numbers")
	}
	return nil
}

func (l RateLimits) withDefaults() RateLimits {
	if l.IPPerSecond == 0 {
		l.IPPerSecond = defaultIPRate
	}
	if l.IPBurst == 0 {
		l.IPBurst = defaultIPBurst
	}
	if l.TokenPerSecond == 0 {
		l.TokenPerSecond = defaultTokenRate
	}
	if l.TokenBurst == 0 {
		l.TokenBurst = defaultTokenBurst
	}
	return l
}

// limiters holds the two keyed limiters; a nil one is off.
type limiters struct {
	ip, token *keyedLimiter
}

func newLimiters(l RateLimits) *limiters {
	ls := &limiters{}
	if l.IPPerSecond > 0 {
		ls.ip = newKeyedLimiter(rate.Limit(l.IPPerSecond), l.IPBurst)
	}
	if l.TokenPerSecond > 0 {
		ls.token = newKeyedLimiter(rate.Limit(l.TokenPerSecond), l.TokenBurst)
	}
	return ls
}

// keyedLimiter is one token bucket per key, with idle buckets evicted.
type keyedLimiter struct {
	limit     rate.Limit
	burst     int
	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newKeyedLimiter(limit rate.Limit, burst int) *keyedLimiter {
	return &keyedLimiter{limit: limit, burst: burst, buckets: map[string]*bucket{}}
}

// wait takes one token for key and returns zero, or how long the client
// must wait before the request would be allowed.
func (k *keyedLimiter) wait(key string) time.Duration {
	// Real time, not Config.Now: buckets refill with the wall clock.
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.sweep(now)
	b, ok := k.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(k.limit, k.burst)}
		k.buckets[key] = b
	}
	b.seen = now
	if b.lim.AllowN(now, 1) {
		return 0
	}
	r := b.lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	if !r.OK() || d <= 0 {
		return time.Second
	}
	return d
}

// sweep drops idle buckets once a minute, or at once when there are too many.
func (k *keyedLimiter) sweep(now time.Time) {
	if now.Sub(k.lastSweep) < time.Minute && len(k.buckets) < maxLimiterKeys {
		return
	}
	k.lastSweep = now
	idle := limiterIdle
	if len(k.buckets) >= maxLimiterKeys {
		idle = 0 // under a flood of new keys, keep only the busy ones
	}
	for key, b := range k.buckets {
		if now.Sub(b.seen) >= idle && b.lim.TokensAt(now) >= float64(k.burst)-1 {
			delete(k.buckets, key)
		}
	}
	if len(k.buckets) >= maxLimiterKeys {
		clear(k.buckets) // all busy: forget them rather than grow without bound
	}
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
