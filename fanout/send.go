package fanout

import (
	"bytes"
	"context"
	"sync/atomic"
	"time"
)

// StanzaSender writes delivery messages to the XMPP server.
type StanzaSender interface {
	// WaitReady blocks until a component connection is up or ctx ends.
	WaitReady(ctx context.Context) error
	// DeliverBatch writes one message per recipient of b and returns once
	// the XMPP server has taken them, or with the reason it may not have.
	DeliverBatch(ctx context.Context, b Batch) error
}

// ConfirmingSender is a StanzaSender that also reports how far the XMPP
// server has confirmed a batch, so that a send cut short can be resumed.
type ConfirmingSender interface {
	// DeliverBatchTracked is DeliverBatch that calls confirmed with the
	// number of b's leading recipients the server has confirmed, each time
	// it grows. confirmed may be called on the stream's reader and must
	// return at once; it may still be called after an error was returned.
	DeliverBatchTracked(ctx context.Context, b Batch, confirmed func(n int)) error
}

// Send is the second stage: it hands batches to the component and tells the
// caller whether to acknowledge them.
type Send struct {
	sender    StanzaSender
	readyWait time.Duration
	metrics   *Metrics
	opt       options
}

// NewSend returns the send stage. readyWait bounds how long one batch waits
// for a component connection before it is handed back to JetStream for a
// later retry (zero means 10 s); keep it below the consumer's AckWait.
// With WithTracking the batches of a retracted post are dropped.
func NewSend(sender StanzaSender, readyWait time.Duration, metrics *Metrics, opts ...Option) *Send {
	if readyWait == 0 {
		readyWait = defaultReadyWait
	}
	return &Send{sender: sender, readyWait: readyWait, metrics: metrics, opt: buildOptions(opts)}
}

// endSendTimeout bounds the call that uncounts a batch once sent; if it
// fails, the count expires by itself.
const endSendTimeout = 2 * time.Second

// Deliver sends b. A nil error means the batch may be acknowledged; any error
// means it must be retried later (it is not lost).
func (s *Send) Deliver(ctx context.Context, b Batch) error {
	return s.deliver(ctx, b, false)
}

// Redeliver sends b, which was handed out before (JetStream redelivered
// it): with WithBatchProgress, the recipients the server confirmed on an
// earlier attempt are skipped. Otherwise it is Deliver.
func (s *Send) Redeliver(ctx context.Context, b Batch) error {
	return s.deliver(ctx, b, true)
}

func (s *Send) deliver(ctx context.Context, b Batch, redelivered bool) error {
	wctx, cancel := context.WithTimeout(ctx, s.readyWait)
	err := s.sender.WaitReady(wctx)
	cancel()
	if err != nil {
		s.metrics.sendFailed()
		return err
	}
	if s.opt.progress != nil && b.Post.Retracts == "" {
		// Counted before the check, so that a retraction reserved after
		// the check finds this batch counted (see Fanout.Fan).
		author, id := b.Post.Author, b.Post.ID
		if err := s.opt.progress.BeginSend(ctx, author, id); err != nil {
			s.metrics.sendFailed()
			return err
		}
		defer func() {
			ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endSendTimeout)
			defer cancel()
			_ = s.opt.progress.EndSend(ectx, author, id)
		}()
		gone, err := s.retracted(ctx, b)
		if err != nil {
			s.metrics.sendFailed()
			return err
		}
		if gone {
			return nil // acknowledged unsent: the post is being deleted
		}
	}
	sent, err := s.send(ctx, b, redelivered)
	if err != nil {
		s.metrics.sendFailed()
		return err
	}
	s.metrics.sent(sent)
	return nil
}

// send hands b to the sender, resumed after its confirmed recipients when
// it is redelivered and batch progress is kept, and returns how many
// recipients it sent.
func (s *Send) send(ctx context.Context, b Batch, redelivered bool) (int, error) {
	cs, ok := s.sender.(ConfirmingSender)
	if !ok || s.opt.batches == nil {
		return b.Len(), s.sender.DeliverBatch(ctx, b)
	}
	t := &confirmTracker{store: s.opt.batches, author: b.Post.Author, id: b.MsgID(), total: b.Len()}
	if redelivered {
		n, err := s.opt.batches.Confirmed(ctx, t.author, t.id)
		if err != nil {
			return 0, err
		}
		t.base, t.saved = min(n, t.total), n
		b = b.skip(t.base)
	}
	if b.Len() == 0 { // confirmed whole, but the ack was lost
		return 0, nil
	}
	t.start(ctx)
	err := cs.DeliverBatchTracked(ctx, b, t.confirmed)
	t.finish(ctx, err)
	return b.Len(), err
}

// skip returns b without its first n recipients. A decoded batch's rest
// shares its message: nothing is allocated per recipient.
func (b Batch) skip(n int) Batch {
	n = min(max(n, 0), b.Len())
	if n == 0 {
		return b
	}
	if b.To != nil {
		b.To = b.To[n:]
		return b
	}
	rest := b.recipients
	for range n {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			rest = nil
			break
		}
		rest = rest[i+1:]
	}
	b.recipients, b.count = rest, b.count-n
	return b
}

// confirmTracker saves the confirmed count of one batch attempt as it
// grows. The sender reports it on the stream's reader, which must not wait
// for Redis: confirmed only stores the number and signals run, which does
// one write at a time, coalescing the reports that came meanwhile.
type confirmTracker struct {
	store      BatchProgress
	author, id string
	total      int // recipients of the whole batch
	base       int // recipients confirmed on earlier attempts, skipped

	latest  atomic.Int64  // recipients of this attempt confirmed
	changed chan struct{} // capacity 1: a report not yet saved
	stop    chan struct{}
	exited  chan struct{}
	saved   int // the largest count written (or read), owned by run until finish
}

// saveTimeout bounds the last save of a batch's count,
// which may run after the attempt's context has ended.
const saveTimeout = 2 * time.Second

// start runs the saving goroutine until finish.
func (t *confirmTracker) start(ctx context.Context) {
	t.changed, t.stop, t.exited = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go t.run(ctx)
}

func (t *confirmTracker) confirmed(n int) {
	t.latest.Store(int64(n))
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

func (t *confirmTracker) run(ctx context.Context) {
	defer close(t.exited)
	for {
		select {
		case <-t.changed:
			t.save(ctx, false)
		case <-t.stop:
			return
		case <-ctx.Done():
			return
		}
	}
}

// save writes the confirmed count if it grew. While the attempt runs, the
// count of a batch confirmed whole is left to finish, which knows whether
// it is worth writing. A failed write is not retried; a count saved short
// only costs duplicates.
func (t *confirmTracker) save(ctx context.Context, last bool) {
	n := t.base + int(t.latest.Load())
	if n <= t.saved || (n >= t.total && !last) {
		return
	}
	if t.store.SetConfirmed(ctx, t.author, t.id, n, n >= t.total) == nil {
		t.saved = n
	}
}

// finish stops the saving goroutine and settles the count: as it stands
// when the attempt failed (the redelivery resumes there), whole when the
// batch was sent, so that a redelivery after a lost ack (NATS restarting,
// the gateway killed before acking) sends nothing. A batch sent whole in
// one go (a single chunk) writes nothing: it would be sent again whole.
// The count is left to expire.
func (t *confirmTracker) finish(ctx context.Context, err error) {
	close(t.stop)
	<-t.exited
	if err == nil {
		if t.saved == 0 {
			return
		}
		t.latest.Store(int64(t.total - t.base))
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
	defer cancel()
	t.save(sctx, true)
}

func (s *Send) retracted(ctx context.Context, b Batch) (bool, error) {
	if s.opt.retractions == nil {
		return false, nil
	}
	return s.opt.retractions.Retracted(ctx, b.Post.Author, b.Post.ID)
}
