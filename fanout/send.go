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
}

// NewSend returns the send stage. readyWait bounds how long one batch waits
// for a component connection before it is handed back to JetStream for a
// later retry (zero means 10 s); keep it below the consumer's AckWait.
func NewSend(sender StanzaSender, readyWait time.Duration, metrics *Metrics) *Send {
	if readyWait == 0 {
		readyWait = defaultReadyWait
	}
	return &Send{sender: sender, readyWait: readyWait, metrics: metrics}
}

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
	if err := s.sender.DeliverBatch(ctx, b); err != nil {
		s.metrics.sendFailed()
		return err
	}
	s.metrics.sent(b.Len())
	return nil
}
