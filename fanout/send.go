package fanout

import (
	"context"
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
	if err := s.sender.DeliverBatch(ctx, b); err != nil {
		s.metrics.sendFailed()
		return err
	}
	s.metrics.sent(b.Len())
	return nil
}

func (s *Send) retracted(ctx context.Context, b Batch) (bool, error) {
	if s.opt.retractions == nil {
		return false, nil
	}
	return s.opt.retractions.Retracted(ctx, b.Post.Author, b.Post.ID)
}
