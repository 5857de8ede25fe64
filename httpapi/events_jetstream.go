package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"starling.dev/starling"
)

// FollowConfig says which stream Hub.Follow reads.
type FollowConfig struct {
	// Stream is the stream of posts (fanout.PostsStream); required.
	Stream string
	// Backfill is how many of the stream's last messages are read at start
	// to fill the landing page's latest posts (they are not sent to event
	// clients); zero means 100, negative none.
	Backfill int
	// Logger receives the consumer's troubles; nil discards them.
	Logger *slog.Logger
}

// The wait between attempts to start the consumer grows from followRetryMin
// to followRetryMax; defaultBackfill is FollowConfig.Backfill's default.
const (
	followRetryMin  = 250 * time.Millisecond
	followRetryMax  = 5 * time.Second
	defaultBackfill = 100
)

// Follow reads every post and retraction from the stream with one ordered
// consumer (ephemeral, in memory on the server, recreated by the client
// after a NATS failover or reconnect without a gap), and hands them to the
// hub, until ctx ends; then it closes the hub. Every API replica runs its
// own, so each serves its own clients. While the stream is not there (NATS
// down, the streams not yet made), it retries, and a consumer made again
// resumes after the last message the hub was given.
//
// At first it also reads the stream's last Backfill messages: those made
// before Follow was called only fill the latest posts, and those made since
// (while the stream was not yet there, say) go to clients as well.
func (h *Hub) Follow(ctx context.Context, js jetstream.JetStream, cfg FollowConfig) error {
	defer h.Close()
	if cfg.Stream == "" {
		return errors.New("httpapi: FollowConfig.Stream is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	backfill := cfg.Backfill
	if backfill == 0 {
		backfill = defaultBackfill
	}
	f := &follower{hub: h, js: js, stream: cfg.Stream, backfill: max(backfill, 0), since: time.Now(), log: log}
	wait := followRetryMin
	for {
		err := f.consume(ctx)
		if ctx.Err() != nil {
			return nil
		}
		log.WarnContext(ctx, "httpapi: live posts consumer failed; retrying", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, followRetryMax)
	}
}

// follower is the state of one Follow.
type follower struct {
	hub      *Hub
	js       jetstream.JetStream
	stream   string
	backfill int
	since    time.Time // posts made before are old news
	log      *slog.Logger
	// last is the stream sequence of the last message handed to the hub,
	// where a consumer made again starts.
	last atomic.Uint64
}

// consume runs one ordered consumer until ctx ends or it fails.
func (f *follower) consume(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := f.js.Stream(sctx, f.stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", f.stream, err)
	}
	start, old := f.last.Load()+1, uint64(0)
	if start == 1 {
		info, err := st.Info(sctx)
		if err != nil {
			return fmt.Errorf("stream %s: %w", f.stream, err)
		}
		old = info.State.LastSeq
		start = 1
		if old >= uint64(f.backfill) {
			start = old - uint64(f.backfill) + 1
		}
	}
	cons, err := st.OrderedConsumer(sctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   start,
	})
	if err != nil {
		return fmt.Errorf("ordered consumer on %s: %w", f.stream, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { f.handle(m, old) },
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			f.log.Debug("httpapi: live posts consumer", "err", err)
		}))
	if err != nil {
		return fmt.Errorf("consume %s: %w", f.stream, err)
	}
	f.log.Info("httpapi: following the stream of posts for live pages", "stream", f.stream, "from_seq", start)
	select {
	case <-ctx.Done():
		cc.Stop()
		<-cc.Closed()
		return ctx.Err()
	case <-cc.Closed():
		return errors.New("the consumer stopped")
	}
}

// handle gives one message to the hub. Messages up to the sequence old
// that were made before Follow started only fill the latest posts.
func (f *follower) handle(m jetstream.Msg, old uint64) {
	var seq uint64
	if md, err := m.Metadata(); err == nil {
		seq = md.Sequence.Stream
		f.last.Store(max(f.last.Load(), seq))
	}
	p, err := starling.DecodePost(m.Data())
	if err != nil {
		f.log.Warn("httpapi: undecodable post on the stream", "subject", m.Subject(), "err", err)
		return
	}
	if seq <= old && p.CreatedAt.Before(f.since) {
		f.hub.remember(p)
		return
	}
	f.hub.Publish(p)
}
