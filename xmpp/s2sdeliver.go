package xmpp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"starling.dev/starling/fanout"
	"starling.dev/starling/s2s"
)

// s2sParallel bounds the remote domains one batch is written to at once.
const s2sParallel = 16

// errStopWalk ends a walk over a batch's recipients early.
var errStopWalk = errors.New("xmpp: stop")

// deliverS2S is DeliverBatchTracked in s2s mode. The batch's recipients are
// grouped by domain and each group is written on its domain's stream,
// chunk by chunk, each chunk followed by a ping to that domain's server,
// whose answer comes back on the server's own stream to us: the batch is
// confirmed once every chunk's ping is answered. Big batches are paced per
// remote server. A domain that cannot be reached is settled at once: its
// recipients count as bounced, as in component mode, where our server's
// own server-to-server failure bounces them back to us.
func (c *Component) deliverS2S(ctx context.Context, b fanout.Batch, confirmed func(n int)) error {
	if c.Links() == 0 {
		return errNotConnected
	}
	d := &s2sBatch{
		c: c, batch: b, plan: groupByDomain(b),
		msg:   NewDelivery(c.cfg.Domain, c.cfg.Payload, b.Post),
		paced: b.Page > 0 || b.Len() > unpacedBatch,
	}
	if confirmed != nil {
		d.prefix = &scatteredPrefix{done: make([]bool, len(d.plan.groupOf)), report: confirmed}
	}
	// One answer per chunk: a chunk has at least one recipient.
	d.answers = make(chan error, len(d.plan.groupOf)+1)
	errs := make([]error, len(d.plan.groups))
	var wg sync.WaitGroup
	slots := make(chan struct{}, s2sParallel)
groups:
	for g := range d.plan.groups {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			errs[g] = ctx.Err()
			break groups
		}
		wg.Go(func() {
			defer func() { <-slots }()
			errs[g] = d.deliverDomain(ctx, g)
		})
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err == nil {
		err = d.waitAnswers(ctx)
	}
	if err != nil {
		d.abandon(err)
	}
	return err
}

// domainPlan is a batch's recipients grouped by domain.
type domainPlan struct {
	groups  []domainGroup
	groupOf []uint16 // each recipient's group, in batch order
}

// domainGroup is the recipients of one domain, by their index in the batch.
type domainGroup struct {
	domain  string
	members []int32
}

// groupByDomain groups b's recipients by the domain of their JID.
func groupByDomain(b fanout.Batch) domainPlan {
	p := domainPlan{groupOf: make([]uint16, 0, b.Len())}
	index := map[string]int{}
	_ = b.Recipients(func(to []byte) error {
		dom := domainOf(to)
		g, ok := index[string(dom)] // no allocation for the lookup
		if !ok {
			g = len(p.groups)
			index[string(dom)] = g
			p.groups = append(p.groups, domainGroup{domain: string(dom)})
		}
		p.groups[g].members = append(p.groups[g].members, int32(len(p.groupOf)))
		p.groupOf = append(p.groupOf, uint16(g))
		return nil
	})
	return p
}

// s2sBatch is one batch being delivered in s2s mode.
type s2sBatch struct {
	c      *Component
	batch  fanout.Batch
	plan   domainPlan
	msg    *Delivery
	paced  bool
	prefix *scatteredPrefix // nil unless the caller tracks progress
	// answers receives one result per chunk's ping.
	answers chan error

	mu    sync.Mutex
	pings []string
}

// deliverDomain writes group g's recipients on its domain's stream.
func (d *s2sBatch) deliverDomain(ctx context.Context, g int) error {
	grp := d.plan.groups[g]
	o, err := d.c.fed.Stream(ctx, grp.domain)
	if errors.Is(err, s2s.ErrUnreachable) {
		d.unreachable(g, err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("xmpp: stream to %s: %w", grp.domain, err)
	}
	var p *pacer
	size := fanout.BatchSize
	if d.paced {
		p = d.c.domainPacers.get(grp.domain)
		size = p.chunk()
	}
	head := renderPingHead(d.c.cfg.Domain, grp.domain)
	for lo := 0; lo < len(grp.members); lo += size {
		hi := min(lo+size, len(grp.members))
		if p != nil {
			if err := p.acquire(ctx, hi-lo); err != nil {
				return err
			}
		}
		sent := time.Now()
		id := d.c.pings.addFrom(o, grp.domain, func(err error) { d.answered(g, lo, hi, p, sent, err) })
		d.mu.Lock()
		d.pings = append(d.pings, id)
		d.mu.Unlock()
		err := o.Write(func(w *bufio.Writer) error { return d.writeChunk(w, g, lo, hi, head, id) })
		if err != nil {
			return fmt.Errorf("xmpp: write delivery: %w", err)
		}
	}
	return nil
}

// writeChunk writes the messages to group g's recipients lo to hi (their
// positions in the group), then the ping whose answer confirms them. Like
// the component's, it allocates nothing per recipient.
func (d *s2sBatch) writeChunk(w *bufio.Writer, g, lo, hi int, pingHead []byte, pingID string) error {
	i, k := 0, 0 // index in the batch, position in the group
	err := d.batch.Recipients(func(to []byte) error {
		if i < len(d.plan.groupOf) && int(d.plan.groupOf[i]) == g {
			if k >= lo {
				if err := d.msg.writeTo(w, to); err != nil {
					return err
				}
			}
			k++
		}
		i++
		if k >= hi {
			return errStopWalk
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopWalk) {
		return err
	}
	w.Write(pingHead) // errors are sticky: see the last write
	w.WriteString(pingID)
	_, err = w.WriteString(pingTail)
	return err
}

// answered takes the result of the ping after group g's chunk lo to hi,
// written at sent.
func (d *s2sBatch) answered(g, lo, hi int, p *pacer, sent time.Time, err error) {
	if p != nil {
		if err == nil {
			p.observe(time.Since(sent))
		}
		p.release(hi-lo, err == nil)
	}
	if err == nil && d.prefix != nil {
		d.prefix.confirm(d.plan.groups[g].members[lo:hi])
	}
	d.answers <- err
}

// unreachable settles group g, whose domain cannot be reached: its
// recipients are not sent again, and each counts as a bounce.
func (d *s2sBatch) unreachable(g int, err error) {
	grp := d.plan.groups[g]
	d.c.log.Warn("followers' server unreachable; their deliveries count as bounces",
		"domain", grp.domain, "recipients", len(grp.members), "post", d.batch.Post.ID, "err", err)
	if d.prefix != nil {
		d.prefix.confirm(grp.members)
	}
	i := 0
	_ = d.batch.Recipients(func(to []byte) error {
		if i < len(d.plan.groupOf) && int(d.plan.groupOf[i]) == g {
			follower := string(to)
			d.c.metrics.bounce()
			d.c.queue(follower, "bounce", func(ctx context.Context, _ *outbox) {
				if _, err := d.c.store.Bounced(ctx, follower); err != nil {
					d.c.log.Warn("bounce not recorded", "from", follower, "err", err)
				}
			})
		}
		i++
		return nil
	})
}

// waitAnswers returns nil once every chunk's ping is answered, or the
// first reason one will not be.
func (d *s2sBatch) waitAnswers(ctx context.Context) error {
	d.mu.Lock()
	n := len(d.pings)
	d.mu.Unlock()
	t := time.NewTimer(d.c.cfg.PingTimeout)
	defer t.Stop()
	for range n {
		select {
		case err := <-d.answers:
			if err != nil {
				return err
			}
		case <-t.C:
			return fmt.Errorf("xmpp: no answer to delivery pings after %s", d.c.cfg.PingTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// abandon resolves the batch's pings still waiting, returning their room
// in the pacers' windows; the batch will be sent again.
func (d *s2sBatch) abandon(err error) {
	d.mu.Lock()
	ids := d.pings
	d.mu.Unlock()
	for _, id := range ids {
		d.c.pings.resolve(id, err)
	}
}

// scatteredPrefix turns the confirmations of chunks, each a set of
// recipients anywhere in the batch, into the number of leading recipients
// confirmed, reported each time it grows, in increasing order.
type scatteredPrefix struct {
	mu     sync.Mutex
	done   []bool
	next   int
	report func(n int)
}

func (p *scatteredPrefix) confirm(members []int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, i := range members {
		p.done[i] = true
	}
	grown := false
	for p.next < len(p.done) && p.done[p.next] {
		p.next++
		grown = true
	}
	if grown {
		p.report(p.next)
	}
}
