package xmpp

import (
	"bufio"
	"context"
	"fmt"
	"sync"
	"time"

	"starling.dev/starling/fanout"
)

// unpacedBatch is the largest first page written without pacing: a small
// author's whole post.
const unpacedBatch = 50

// pingTail closes the delivery ping after its id.
const pingTail = `"><ping xmlns="urn:xmpp:ping"/></iq>`

// DeliverBatch writes one chat message per recipient, each chunk of them
// followed by an XEP-0199 ping to the server, and returns nil only when the
// server has answered every ping. The server handles a component stream in
// order, so an answer means every message before it has been routed; a
// flush alone would not survive a server crash. A small post goes out at
// once; big batches are paced (see pacer), so that they never fill the
// server's queue ahead of someone else's small post.
func (c *Component) DeliverBatch(ctx context.Context, b fanout.Batch) error {
	return c.DeliverBatchTracked(ctx, b, nil)
}

var _ fanout.ConfirmingSender = (*Component)(nil)

// DeliverBatchTracked is DeliverBatch that also reports, through confirmed
// (unless nil), how many of b's leading recipients the server has
// confirmed, each time that number grows: the chunks are confirmed in the
// order they were written, so a send cut short can be resumed after them.
// confirmed is called on the stream's reader, in increasing order, and
// must return at once (store the number, signal a channel); it may still
// be called just after DeliverBatchTracked has returned an error.
func (c *Component) DeliverBatchTracked(ctx context.Context, b fanout.Batch, confirmed func(n int)) error {
	if c.fed != nil {
		return c.deliverS2S(ctx, b, confirmed)
	}
	l := c.current()
	if l == nil {
		return errNotConnected
	}
	out := c.newOutgoing(l, b)
	if confirmed != nil {
		out.confirmed = &confirmedPrefix{report: confirmed}
	}
	err := out.writeChunks(ctx)
	if err == nil {
		err = out.waitAnswers(ctx)
	}
	if err != nil {
		out.abandon(err)
	}
	return err
}

// outgoing is one batch being delivered: its chunks written so far and the
// answers to their pings.
type outgoing struct {
	c     *Component
	l     *link
	batch fanout.Batch
	msg   *Delivery
	paced bool
	size  int // recipients per chunk
	// pings are the ids of the chunks' pings; answers receives one result
	// per ping, and is large enough that resolving one never blocks.
	pings   []string
	answers chan error
	// confirmed, if not nil, follows the prefix of the batch the server
	// has confirmed.
	confirmed *confirmedPrefix
}

// confirmedPrefix turns the answers to a batch's pings, one per chunk, into
// the number of leading recipients confirmed. Answers may be resolved from
// the reader and from abandon at once, hence the lock; the lock also keeps
// the reports in increasing order.
type confirmedPrefix struct {
	mu     sync.Mutex
	sizes  []int  // recipients per chunk, in the order written
	ok     []bool // the chunk's ping was answered by the server
	next   int    // the first chunk not confirmed
	count  int    // recipients in chunks [0, next)
	report func(n int)
}

// add registers the next chunk, of n recipients, and returns its index.
func (p *confirmedPrefix) add(n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sizes = append(p.sizes, n)
	p.ok = append(p.ok, false)
	return len(p.sizes) - 1
}

// confirm marks chunk i as answered and reports the prefix if it grew.
func (p *confirmedPrefix) confirm(i int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ok[i] = true
	grown := false
	for p.next < len(p.ok) && p.ok[p.next] {
		p.count += p.sizes[p.next]
		p.next++
		grown = true
	}
	if grown {
		p.report(p.count)
	}
}

func (c *Component) newOutgoing(l *link, b fanout.Batch) *outgoing {
	o := &outgoing{c: c, l: l, batch: b, msg: NewDelivery(c.cfg.Domain, c.cfg.Payload, b.Post), size: fanout.BatchSize}
	// A small author's post (a first page of a few stanzas) goes out at
	// once; everything larger, a celebrity's first page included, is paced.
	if b.Page > 0 || b.Len() > unpacedBatch {
		o.paced, o.size = true, c.pacer.chunk()
	}
	o.answers = make(chan error, b.Len()/o.size+1)
	return o
}

// writeChunks writes the batch, chunk by chunk.
func (o *outgoing) writeChunks(ctx context.Context) error {
	return o.batch.Chunks(o.size, func(part fanout.Batch) error { return o.writeChunk(ctx, part) })
}

// writeChunk waits for room in the pacer's window (when paced), registers
// the chunk's ping and writes the chunk's messages with the ping behind
// them.
func (o *outgoing) writeChunk(ctx context.Context, part fanout.Batch) error {
	n := part.Len()
	if o.paced {
		if err := o.c.pacer.acquire(ctx, n); err != nil {
			return err
		}
	}
	chunk := -1
	if o.confirmed != nil {
		chunk = o.confirmed.add(n)
	}
	id := o.c.pings.add(o.l, func(err error) { o.answered(chunk, n, err) })
	o.pings = append(o.pings, id)
	err := o.c.locked(o.l, func(w *bufio.Writer) error { return o.writeStanzas(w, part, id) })
	if err != nil {
		return fmt.Errorf("xmpp: write delivery: %w", err)
	}
	return nil
}

// writeStanzas writes one message per recipient of part, then the ping
// whose answer confirms them. This is the hot path: it allocates nothing.
func (o *outgoing) writeStanzas(w *bufio.Writer, part fanout.Batch, pingID string) error {
	err := part.Recipients(func(to []byte) error { return o.msg.writeTo(w, to) })
	if err != nil {
		return err
	}
	w.Write(o.c.pingHead) // errors are sticky: see the last write
	w.WriteString(pingID)
	_, err = w.WriteString(pingTail)
	return err
}

// answered is called once per chunk, with the server's answer to its ping
// (nil) or the reason none will come: the chunk's room in the window is
// returned, a confirmed chunk reported, and the result passed on to
// waitAnswers.
func (o *outgoing) answered(chunk, n int, err error) {
	if o.paced {
		o.c.pacer.release(n, err == nil)
	}
	if err == nil && o.confirmed != nil {
		o.confirmed.confirm(chunk)
	}
	o.answers <- err
}

// waitAnswers returns nil once every ping is answered, or the first reason
// one will not be: a lost connection, PingTimeout, or ctx.
func (o *outgoing) waitAnswers(ctx context.Context) error {
	t := time.NewTimer(o.c.cfg.PingTimeout)
	defer t.Stop()
	for range o.pings {
		select {
		case err := <-o.answers:
			if err != nil {
				return err
			}
		case <-t.C:
			return fmt.Errorf("xmpp: no answer to delivery pings after %s", o.c.cfg.PingTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// abandon resolves the batch's pings still waiting, so that their room in
// the window is returned; the batch will be sent again.
func (o *outgoing) abandon(err error) {
	for _, id := range o.pings {
		o.c.pings.resolve(id, err)
	}
}

// renderPingHead renders the delivery ping up to the value of its id.
func renderPingHead(from, to string) []byte {
	b := append([]byte(nil), `<iq type="get" from="`...)
	b = appendAttr(b, from)
	b = append(b, `" to="`...)
	b = appendAttr(b, to)
	return append(b, `" id="`...)
}
