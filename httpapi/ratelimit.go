package httpapi

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5/middleware"

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

// userTokenChars is the length of a user token after its prefix: newToken's
// 32 bytes in unpadded base64url.
const userTokenChars = 43

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

// limiters holds the two keyed limiters, a nil one being off, and the
// addresses refused for failed tokens.
type limiters struct {
	ip, token *keyedLimiter
	failed    *penalties
}

func newLimiters(l RateLimits) *limiters {
	ls := &limiters{}
	if l.IPPerSecond > 0 {
		ls.ip = newKeyedLimiter(l.IPPerSecond, l.IPBurst)
		ls.failed = newPenalties(maxLimiterKeys, time.Now)
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
// A nil limiter allows everything.
func (k *keyedLimiter) wait(key string) time.Duration {
	if k == nil {
		return 0
	}
	d := k.keyed.Take(key)
	if d.Verdict == ratelimit.Allowed {
		return 0
	}
	return max(d.RetryAfter, time.Second)
}

// rateLimit answers 429 with Retry-After when the caller has used up its
// bucket. A request with a well-formed bearer token (see looksLikeToken) is
// limited per token, whatever address it comes from, so that one
// application server acting for many users is not one client; every other
// request is limited per client address. A token that turns out not to be
// valid (the answer is 401) is charged to the address after all, and an
// address whose bucket such failures have emptied is refused before its
// next token is tried, so new tokens do not buy fresh buckets. Tokens are
// keyed by their hash, so no token is kept in memory.
func (s *server) rateLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := limitKey(clientAddr(r), r.RemoteAddr)
		token, ok := bearerToken(r)
		if !ok || !s.looksLikeToken(token) {
			if d := s.limits.ip.wait(ip); d > 0 {
				s.tooMany(w, "ip", "address", d)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if d := s.limits.failed.wait(ip); d > 0 {
			s.tooMany(w, "ip", "address", d)
			return
		}
		if d := s.limits.token.wait(hashToken(token)); d > 0 {
			s.tooMany(w, "token", "token", d)
			return
		}
		if s.limits.ip == nil {
			next.ServeHTTP(w, r)
			return
		}
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		if ww.Status() == http.StatusUnauthorized {
			if d := s.limits.ip.wait(ip); d > 0 {
				s.limits.failed.refuse(ip, d)
			}
		}
	})
}

// looksLikeToken reports whether token has the form of a user token or is
// the admin token: only those earn a bucket of their own.
func (s *server) looksLikeToken(token string) bool {
	if s.isAdminToken(token) {
		return true
	}
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok || len(rest) != userTokenChars {
		return false
	}
	for _, c := range []byte(rest) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (s *server) tooMany(w http.ResponseWriter, limit, what string, d time.Duration) {
	s.metrics.rateLimited.WithLabelValues(limit).Inc()
	secs := int(math.Ceil(d.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeProblem(w, blank(http.StatusTooManyRequests,
		"too many requests from this "+what+"; retry after "+strconv.Itoa(secs)+" s"))
}

// penalties are the addresses refused until some time: those whose bucket
// failed tokens emptied. Only such addresses are kept, at most max of them;
// past that the expired ones go, and if none has, all of them.
type penalties struct {
	max int
	now func() time.Time

	mu    sync.Mutex
	until map[string]time.Time
}

func newPenalties(maxKeys int, now func() time.Time) *penalties {
	return &penalties{max: maxKeys, now: now, until: map[string]time.Time{}}
}

// refuse refuses key for d from now.
func (p *penalties) refuse(key string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if _, ok := p.until[key]; !ok && len(p.until) >= p.max {
		for k, t := range p.until {
			if !now.Before(t) {
				delete(p.until, k)
			}
		}
		if len(p.until) >= p.max {
			clear(p.until)
		}
	}
	p.until[key] = now.Add(d)
}

// wait is how long key is still refused (at least a second, the unit of
// Retry-After), or zero; a nil penalties refuses nothing.
func (p *penalties) wait(key string) time.Duration {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.until[key]
	if !ok {
		return 0
	}
	d := t.Sub(p.now())
	if d <= 0 {
		delete(p.until, key)
		return 0
	}
	return max(d, time.Second)
}

// len is the number of addresses held, for tests.
func (p *penalties) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.until)
}
