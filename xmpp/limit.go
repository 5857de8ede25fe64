package xmpp

import "starling.dev/starling/internal/ratelimit"

// verdict is the rate limiter's answer for one command.
type verdict = ratelimit.Verdict

const (
	allowed  = ratelimit.Allowed
	slowDown = ratelimit.Refused      // refused; say "slow down" once
	quiet    = ratelimit.RefusedAgain // refused again; say nothing until the bucket refills
)

// limiter is each bare JID's command allowance: burst commands at once,
// refilled at rate per second. Memory follows the number of recently active
// JIDs (see ratelimit).
type limiter struct{ keyed *ratelimit.Limiter }

// newLimiter takes Config's defaulted CommandRate and CommandBurst, which
// Config.Validate has checked; a rate that is not positive would be a bug.
func newLimiter(rate float64, burst int) *limiter {
	l, err := ratelimit.New(ratelimit.Config{Rate: rate, Burst: burst})
	if err != nil {
		panic("xmpp: command limiter: " + err.Error())
	}
	return &limiter{keyed: l}
}

// take spends one token of key's bucket.
func (l *limiter) take(key string) verdict { return l.keyed.Take(key).Verdict }

// allow is take for callers that answer every refusal the same way.
func (l *limiter) allow(key string) bool { return l.keyed.Allow(key) }
