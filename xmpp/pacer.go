package xmpp

import (
	"context"
	"sync"
	"time"
)

// pacer bounds the later-page stanzas the XMPP server has not confirmed yet
// to about QueueDelay's worth of what it routes per second, so that a small
// post written behind a big fanout waits little in the server's queue, while
// the queue never runs dry. The rate is measured from the confirmations:
// while the window is full the server drains its queue at its own speed.
type pacer struct {
	target   time.Duration
	min, max int

	mu       sync.Mutex
	cond     *sync.Cond
	inflight int
	window   int
	rate     float64 // stanzas confirmed per second, smoothed
	counted  int     // confirmed since 'since'
	since    time.Time
	last     time.Time // of the latest confirmation
	now      func() time.Time
	// path is the round trip a chunk takes however short the server's
	// queue: the smallest seen lately (see observe). Zero unless observed:
	// a component's pings come straight back from the server.
	path      time.Duration
	pathMin   time.Duration // the smallest round trip of this period
	pathSince time.Time     // the period's start
}

// The window's bounds, in stanzas: the window starts at the first, which
// keeps a just-connected server's queue short until its speed is known; the
// second bounds what the server holds unconfirmed however fast it seems
// (ejabberd drops a component with 10,000 stanzas queued).
const (
	minWindow = 100
	maxWindow = 2000
)

func newPacer(target time.Duration, min, max int) *pacer {
	// Start small and open up as confirmations show the server's speed.
	p := &pacer{target: target, min: min, max: max, window: min, now: time.Now}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func clamp(v, lo, hi int) int { return max(lo, min(v, hi)) }

// acquire waits until n more stanzas fit in the window (always, when none
// are in flight) or ctx ends.
func (p *pacer) acquire(ctx context.Context, n int) error {
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.inflight > 0 && p.inflight+n > p.window {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.cond.Wait()
	}
	if now := p.now(); p.inflight == 0 && now.Sub(p.last) > p.target {
		// Idle since the last confirmation: measure afresh, so that
		// time with nothing to send does not count as a slow server.
		p.since, p.counted = now, 0
	}
	p.inflight += n
	return nil
}

// release returns n stanzas to the window; confirmed says the server
// answered for them (a failure measures nothing).
func (p *pacer) release(n int, confirmed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inflight -= n
	p.cond.Broadcast()
	if !confirmed {
		return
	}
	p.counted += n
	now := p.now()
	p.last = now
	if d := now.Sub(p.since); d >= 20*time.Millisecond {
		r := float64(p.counted) / d.Seconds()
		if p.rate == 0 {
			p.rate = r
		} else {
			p.rate = 0.7*p.rate + 0.3*r
		}
		p.window = clamp(int(p.rate*(p.target+p.path).Seconds()), p.min, p.max)
		p.since, p.counted = now, 0
	}
}

// chunk is how many stanzas to write before the next ping: a quarter of the
// window, so several round trips overlap.
func (p *pacer) chunk() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return clamp(p.window/4, 25, 250)
}

// pathPeriod is how long a smallest round trip is remembered: long enough
// to have seen the queue empty, short enough to follow a route that
// changed.
const pathPeriod = 10 * time.Second

// observe records the round trip of one confirmed chunk, from its write to
// its answer. In s2s mode the answer comes back through the remote server's
// own stream to us, a delay that is not queueing at that server: the
// window covers the smallest recent round trip on top of the target, or a
// longer path alone would shrink it to its minimum and leave the remote
// server idle between chunks.
func (p *pacer) observe(rtt time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.pathMin == 0 || rtt < p.pathMin {
		p.pathMin = rtt
	}
	if now.Sub(p.pathSince) >= pathPeriod {
		p.path, p.pathMin, p.pathSince = p.pathMin, 0, now
	} else if p.path == 0 || p.pathMin < p.path {
		p.path = p.pathMin
	}
}

// idle reports whether nothing is in flight.
func (p *pacer) idle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inflight == 0
}

// pacers are s2s mode's pacers, one per remote domain, made on first use:
// each remote server routes at its own speed, and a slow one must not hold
// up deliveries to the others.
type pacers struct {
	target time.Duration // QueueDelay

	mu sync.Mutex
	m  map[string]*pacer
}

// maxPacers bounds the remote domains whose pacers are kept; beyond it the
// idle ones are forgotten (their measured rates with them).
const maxPacers = 1024

// get returns domain's pacer.
func (ps *pacers) get(domain string) *pacer {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p := ps.m[domain]; p != nil {
		return p
	}
	if ps.m == nil {
		ps.m = map[string]*pacer{}
	}
	if len(ps.m) >= maxPacers {
		for d, p := range ps.m {
			if p.idle() {
				delete(ps.m, d)
			}
		}
	}
	p := newPacer(ps.target, minWindow, maxWindow)
	ps.m[domain] = p
	return p
}
