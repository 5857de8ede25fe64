package fanout

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The dead-letter stream keeps the messages the pipeline gave up on, with
// headers saying where each came from and why, so that an operator can read
// them (nats stream view DEADLETTER) and republish what should be retried.
const (
	deadLetterStream        = "DEADLETTER"
	deadLetterSubjectPrefix = "starling.dead." // followed by the original stream's name
	// deadLetterMaxAge is how long a dead letter waits for an operator.
	deadLetterMaxAge = 14 * 24 * time.Hour
	// deadLetterMaxBytes bounds the stream's disk use should a bug
	// dead-letter everything; the oldest letters go first.
	deadLetterMaxBytes = 1 << 30

	headerStream     = "Starling-Stream"     // stream the message came from
	headerSubject    = "Starling-Subject"    // its subject there
	headerSequence   = "Starling-Sequence"   // its stream sequence there
	headerDeliveries = "Starling-Deliveries" // how many times it was delivered
	headerReason     = "Starling-Reason"     // reasonUndecodable or reasonExhausted
	headerError      = "Starling-Error"      // the last error
)

// Why a message was dead-lettered; the reason label of
// starling_fanout_dead_letters_total.
const (
	reasonUndecodable = "undecodable"
	reasonExhausted   = "attempts_exhausted"
)

// errPoison marks a message that can never be processed (it does not decode).
var errPoison = errors.New("fanout: undecodable message")

func deadLetterStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       deadLetterStream,
		Subjects:   []string{deadLetterSubjectPrefix + ">"},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		MaxAge:     deadLetterMaxAge,
		MaxBytes:   deadLetterMaxBytes,
		Discard:    jetstream.DiscardOld,
		Duplicates: duplicateWindow,
	}
}

// deadLetter stores m in the dead-letter stream and then terminates it. If
// the letter cannot be stored the message is redelivered later instead:
// nothing is dropped without a record. The letter's Nats-Msg-Id is the
// original stream and sequence, so a crash between the two steps does not
// store it twice.
func (p *Pipeline) deadLetter(ctx context.Context, s stage, m jetstream.Msg, reason string, cause error) {
	var deliveries uint64
	var seq uint64
	if meta, err := m.Metadata(); err == nil {
		deliveries, seq = meta.NumDelivered, meta.Sequence.Stream
	}
	letter := nats.NewMsg(deadLetterSubjectPrefix + s.stream)
	letter.Data = m.Data()
	letter.Header.Set(headerStream, s.stream)
	letter.Header.Set(headerSubject, m.Subject())
	letter.Header.Set(headerSequence, strconv.FormatUint(seq, 10))
	letter.Header.Set(headerDeliveries, strconv.FormatUint(deliveries, 10))
	letter.Header.Set(headerReason, reason)
	letter.Header.Set(headerError, cause.Error())
	letter.Header.Set(jetstream.MsgIDHeader, s.stream+"."+strconv.FormatUint(seq, 10))
	if _, err := p.js.PublishMsg(ctx, letter, jetstream.WithExpectStream(deadLetterStream)); err != nil {
		delay := p.cfg.retryDelay(deliveries)
		p.log.Error("dead letter not stored; will retry", "subject", m.Subject(), "seq", seq, "reason", reason, "err", err)
		p.nak(m, delay)
		return
	}
	if reason == reasonUndecodable {
		p.metrics.undecodable()
	}
	p.metrics.deadLettered(s.stream, reason)
	p.log.Error("message dead-lettered", "stream", s.stream, "subject", m.Subject(), "seq", seq,
		"deliveries", deliveries, "reason", reason, "err", cause)
	if err := m.TermWithReason(reason); err != nil {
		p.log.Warn("term failed; the message will come back and be dead-lettered again (deduplicated)", "subject", m.Subject(), "err", err)
	}
}
