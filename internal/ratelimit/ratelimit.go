// Package ratelimit is a token bucket per key (a client IP, a bearer
// token's hash, a follower's bare JID) whose memory follows the number of
// recently busy keys, not the number of keys ever seen.
//
// Both the HTTP API and the XMPP component limit with it. The component
// also needs to know whether a refusal is the first since the key was last
// allowed, so that it warns once and then stays quiet; Take reports that.
package ratelimit

import (
	"errors"
	"math"
	"sync"
	"time"
)

// DefaultMaxKeys bounds a limiter's buckets when Config.MaxKeys is zero.
const DefaultMaxKeys = 100_000

// minSweepAt is the bucket count below which the limiter never sweeps:
// sweeping a small map costs more than it frees.
const minSweepAt = 1024

// Config sets the allowance every key gets.
type Config struct {
	// Rate is how many tokens a key's bucket regains per second; it must be
	// positive (a limit that is off is no Limiter at all).
	Rate float64
	// Burst is how many tokens a full bucket holds, the requests a key may
	// make at once; zero means 1.
	Burst int
	// MaxKeys bounds the buckets kept; zero means DefaultMaxKeys. When a new
	// key would pass it and sweeping full buckets frees nothing, every
	// bucket is forgotten: under a flood of new keys memory stays bounded,
	// at the price of giving busy keys a fresh bucket.
	MaxKeys int
	// Now is the clock buckets refill by; nil means time.Now.
	Now func() time.Time
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	switch {
	case math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) || c.Rate <= 0:
		return errors.New("ratelimit: Rate must be a positive number")
	case c.Burst < 0:
		return errors.New("ratelimit: Burst must not be negative")
	case c.MaxKeys < 0:
		return errors.New("ratelimit: MaxKeys must not be negative")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Burst == 0 {
		c.Burst = 1
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = DefaultMaxKeys
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Verdict is the limiter's answer to one request.
type Verdict int

const (
	// Allowed means the request may go ahead; it spent a token.
	Allowed Verdict = iota
	// Refused is the first refusal since the key was last allowed: the
	// moment to tell the client to slow down.
	Refused
	// RefusedAgain is a further refusal; the client was already told.
	RefusedAgain
)

// Decision is a Verdict and, for a refusal, how long until the key's bucket
// holds a token again.
type Decision struct {
	Verdict    Verdict
	RetryAfter time.Duration
}

// Limiter is a token bucket per key. It is safe for concurrent use.
type Limiter struct {
	rate, burst float64
	maxKeys     int
	now         func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	sweepAt int // the bucket count at which the next insert sweeps
}

type bucket struct {
	tokens float64
	last   time.Time // when tokens was computed
	warned bool      // refused since last allowed
}

// New returns a limiter in which every key starts with a full bucket.
func New(cfg Config) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Limiter{
		rate: cfg.Rate, burst: float64(cfg.Burst), maxKeys: cfg.MaxKeys, now: cfg.Now,
		buckets: map[string]*bucket{}, sweepAt: min(minSweepAt, cfg.MaxKeys),
	}, nil
}

// Take spends one of key's tokens if it has one.
func (l *Limiter) Take(key string) Decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.sweepAt {
			l.sweep(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = l.tokensAt(b, now)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		b.warned = false
		return Decision{Verdict: Allowed}
	}
	d := Decision{Verdict: Refused, RetryAfter: time.Duration((1 - b.tokens) / l.rate * float64(time.Second))}
	if b.warned {
		d.Verdict = RefusedAgain
	}
	b.warned = true
	return d
}

// Allow is Take for callers that answer every refusal the same way.
func (l *Limiter) Allow(key string) bool { return l.Take(key).Verdict == Allowed }

// Len is the number of buckets held, for tests and metrics.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

func (l *Limiter) tokensAt(b *bucket, now time.Time) float64 {
	elapsed := now.Sub(b.last).Seconds()
	if elapsed <= 0 {
		return b.tokens // a clock that stepped back refills nothing
	}
	return min(l.burst, b.tokens+elapsed*l.rate)
}

// sweep forgets buckets that have refilled: a fresh bucket for the key
// would be the same. It runs when the map has doubled since the last sweep,
// so its cost is spread over the inserts. Past maxKeys with nothing to
// forget, it forgets everything rather than grow.
func (l *Limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if l.tokensAt(b, now) >= l.burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= l.maxKeys {
		clear(l.buckets)
	}
	l.sweepAt = min(l.maxKeys, max(minSweepAt, 2*len(l.buckets)))
}
