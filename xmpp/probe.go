package xmpp

import (
	"context"
	"time"
)

// probeBatch is how many probes are written at once; the rate limit spaces
// the batches out.
const probeBatch = 50

// probeAll asks every follower who granted us their presence for it again,
// at no more than rate probes per second, so that a (re)connected gateway
// re-learns who is online without flooding anyone's server. It stops when
// ctx ends (the connection went away) or write fails.
func (c *Component) probeAll(ctx context.Context, write func([]byte) error) {
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
