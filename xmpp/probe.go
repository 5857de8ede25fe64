package xmpp

import (
	"context"
	"time"
)

// probeBatch is how many probes are written at once; the rate limit spaces
// the batches out.
const probeBatch = 50

// probeLeaseTTL is how long the link that probed keeps the other gateways
// from probing again, unless it ends sooner (then it releases the lease):
// long enough to cover gateways reconnecting together after the XMPP server
// restarts (their backoffs differ by seconds), short enough that a later,
// separate reconnect probes again, even after a gateway died without
// releasing it. releaseTimeout bounds the release.
const (
	probeLeaseTTL  = 30 * time.Second
	releaseTimeout = 2 * time.Second
)

// probeAll asks every follower who granted us their presence for it again,
// at no more than rate probes per second, so that a (re)connected gateway
// re-learns who is online without flooding anyone's server. Of several
// gateways sharing a store that keeps a probe lease, only the one that takes
// it probes. It stops when ctx ends (the connection went away) or write
// fails.
func (c *Component) probeAll(ctx context.Context, holder string, write func([]byte) error) {
	if !c.takeProbeLease(ctx, holder) {
		return
	}
	interval := time.Duration(float64(time.Second) * probeBatch / c.cfg.ProbeRate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var cursor uint64
	sent := 0
	var buf []byte
	for {
		targets, next, err := c.store.ProbeTargets(ctx, cursor, probeBatch)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("presence probes stopped", "err", err)
			}
			return
		}
		for len(targets) > 0 {
			n := min(len(targets), probeBatch)
			buf = buf[:0]
			for _, t := range targets[:n] {
				buf = append(buf, `<presence type="probe" from="`...)
				buf = appendAttr(buf, t[1])
				buf = append(buf, `" to="`...)
				buf = appendAttr(buf, t[0])
				buf = append(buf, `"/>`...)
			}
			if err := write(buf); err != nil {
				return
			}
			sent += n
			targets = targets[n:]
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		if next == 0 {
			c.log.Info("presence probes sent", "count", sent)
			return
		}
		cursor = next
	}
}

// takeProbeLease reports whether this gateway should probe: yes unless the
// store keeps a probe lease and another gateway holds it. If the store
// cannot tell, it probes (probes twice are better than none).
func (c *Component) takeProbeLease(ctx context.Context, holder string) bool {
	pl, ok := c.store.(ProbeLeaser)
	if !ok {
		return true
	}
	got, err := pl.TakeProbeLease(ctx, holder, probeLeaseTTL)
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return false
		}
		c.log.Warn("presence probe lease unavailable; probing anyway", "err", err)
		return true
	case !got:
		c.log.Info("presence probes left to the gateway holding the lease")
	}
	return got
}

// releaseProbeLease gives the lease up if holder (a link, now ending) has
// it, so that the next link, of this gateway or another, probes at once: a
// gateway restarted, or a standby taking over, re-learns presence.
func (c *Component) releaseProbeLease(holder string) {
	pl, ok := c.store.(ProbeLeaser)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if err := pl.ReleaseProbeLease(ctx, holder); err != nil {
		c.log.Warn("presence probe lease not released; it expires by itself", "err", err)
	}
}
