package xmpp

import (
	"sync"
	"time"
)

// verdict is the rate limiter's answer for one command.
type verdict int

const (
	allowed  verdict = iota
	slowDown         // refused; say "slow down" once
	quiet            // refused again; say nothing until the bucket refills
)

// limiter is a token bucket per bare JID: burst commands at once, refilled
// at rate per second. Buckets that have refilled completely are forgotten,
// so memory follows the number of recently active JIDs.
type limiter struct {
	rate, burst float64
	now         func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	sweepAt int
}

type bucket struct {
	tokens float64
	last   time.Time
	warned bool
}

func newLimiter(rate float64, burst int) *limiter {
	return &limiter{rate: rate, burst: float64(burst), now: time.Now, buckets: map[string]*bucket{}, sweepAt: 1024}
}

// take spends one token of key's bucket.
func (l *limiter) take(key string) verdict {
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
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		b.warned = false
		return allowed
	}
	if b.warned {
		return quiet
	}
	b.warned = true
	return slowDown
}

// allow is take for callers that answer every refusal the same way.
func (l *limiter) allow(key string) bool { return l.take(key) == allowed }

// sweep forgets full buckets; it runs when the map has doubled since the
// last sweep, so its cost is spread over the inserts.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	l.sweepAt = max(1024, 2*len(l.buckets))
}
