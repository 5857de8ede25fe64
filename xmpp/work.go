package xmpp

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"mellium.im/xmpp"
)

// The handlers run on the stream's only reader: while one runs, mellium
// reads nothing else, not even the server's answers to delivery pings, and
// once it writes it holds the session's write lock until it returns, which
// stalls delivery writes too. So a handler only decodes its stanza and hands
// the rest to a worker: the store calls first, then the reply, written on
// the live connection once all the I/O is done.
//
// Each sender's bare JID belongs to one worker, which runs its jobs in
// order: one JID's commands are answered in the order sent, once each.
const (
	// workShards is how many workers there are.
	workShards = 8
	// workQueue is how many jobs may wait for one worker; when its queue is
	// full, a stanza is refused at once (busy) rather than held on the
	// reader.
	workQueue = 64
)

// job is the work one stanza asks for. run does the store calls and writes
// the replies to out, which are sent when it returns.
type job struct {
	key string // the sender's bare JID
	run func(ctx context.Context, out *outbox)
}

// workers are the handlers' job queues, one per shard; Run starts the
// workers that serve them (startWork).
type workers struct {
	seed   maphash.Seed
	queues []chan job
}

func newWorkers(shards, queue int) *workers {
	w := &workers{seed: maphash.MakeSeed(), queues: make([]chan job, shards)}
	for i := range w.queues {
		w.queues[i] = make(chan job, queue)
	}
	return w
}

// submit queues j on its sender's worker, or reports false at once when that
// queue is full: the reader must never wait for a worker.
func (w *workers) submit(j job) bool {
	q := w.queues[maphash.String(w.seed, j.key)%uint64(len(w.queues))]
	select {
	case q <- j:
		return true
	default:
		return false
	}
}

// startWork starts the workers; they run until ctx ends. The returned
// function waits for them. Jobs still queued then are dropped: the
// connection their replies would go on is gone.
func (c *Component) startWork(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	for _, q := range c.work.queues {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-q:
					c.runJob(ctx, j)
				}
			}
		})
	}
	return wg.Wait
}

// runJob runs one job, its store calls bounded by commandTimeout, and sends
// its replies.
func (c *Component) runJob(ctx context.Context, j job) {
	jctx, cancel := context.WithTimeout(ctx, commandTimeout)
	var out outbox
	j.run(jctx, &out)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: the store calls were cut short, and the stream is closing
	}
	if err := c.send(out.toks); err != nil {
		c.log.Warn("reply not sent", "to", j.key, "err", err)
	}
}

// send writes whole stanzas on the live connection under the session's
// write lock, the lock deliveries write under, with their write deadline.
// Nothing else is done while the lock is held. A failed write leaves the
// stream unusable, so the connection is closed and Run reconnects.
func (c *Component) send(toks []xml.Token) error {
	if len(toks) == 0 {
		return nil
	}
	if c.fed != nil {
		return c.sendS2S(toks) // s2s mode: to each recipient's server
	}
	l := c.current()
	if l == nil {
		return errNotConnected
	}
	tw := l.sess.TokenWriter()
	defer tw.Close()
	_ = l.conn.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
	var err error
	for _, t := range toks {
		if err = tw.EncodeToken(t); err != nil {
			break
		}
	}
	if err == nil {
		err = tw.Flush()
	}
	_ = l.conn.SetWriteDeadline(time.Time{})
	if err != nil {
		if !errors.Is(err, xmpp.ErrOutputStreamClosed) { // a closing stream is left to close
			_ = l.conn.Close()
		}
		return fmt.Errorf("xmpp: write reply: %w", err)
	}
	return nil
}

// outbox collects the stanzas a job replies with. It is a TokenWriter, so
// the reply builders write to it as they would to the stream.
type outbox struct{ toks []xml.Token }

// EncodeToken keeps a copy of t: decoders reuse the memory of the tokens
// they return.
func (o *outbox) EncodeToken(t xml.Token) error {
	o.toks = append(o.toks, xml.CopyToken(t))
	return nil
}
