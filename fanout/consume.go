package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
	"starling.dev/starling"
)

// ConsumerConfig tunes the two durable pull consumers.
type ConsumerConfig struct {
	// FanoutWorkers is how many posts are fanned out at once; zero means 4.
	FanoutWorkers int
	// SendWorkers is how many later-page batches (lanes 1 and up) are in
	// flight to the component at once; zero means 4. With FirstWorkers it
	// bounds the stanzas the XMPP server has not yet confirmed to
	// (SendWorkers+FirstWorkers)×BatchSize, 3,000 by default: ejabberd
	// drops a component whose queue passes 10,000 stanzas. (The component
	// paces later pages further, to the server's measured speed.)
	SendWorkers int
	// FirstWorkers is how many first-page batches (lane 0: every post's
	// first page, all of a small author's post) are in flight at once;
	// zero means 2.
	FirstWorkers int
	// AckWait is how long JetStream waits for an ack before redelivering;
	// zero means 30 s.
	AckWait time.Duration
	// RetryDelay is how long a failed message waits before redelivery; zero
	// means 1 s.
	RetryDelay time.Duration
}

func (c ConsumerConfig) withDefaults() ConsumerConfig {
	if c.FanoutWorkers == 0 {
		c.FanoutWorkers = 4
	}
	if c.SendWorkers == 0 {
		c.SendWorkers = 4
	}
	if c.FirstWorkers == 0 {
		c.FirstWorkers = 2
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = time.Second
	}
	return c
}

// Validate reports whether the configuration is usable.
func (c ConsumerConfig) Validate() error {
	if c.FanoutWorkers < 0 || c.SendWorkers < 0 || c.FirstWorkers < 0 || c.AckWait < 0 || c.RetryDelay < 0 {
		return errors.New("fanout: consumer settings must not be negative")
	}
	return nil
}

// Pipeline runs both stages on their JetStream consumers.
type Pipeline struct {
	js      jetstream.JetStream
	fan     *Fanout
	send    *Send
	cfg     ConsumerConfig
	log     *slog.Logger
	metrics *Metrics
}

// NewPipeline wires the stages to JetStream. Call EnsureStreams first.
func NewPipeline(js jetstream.JetStream, fan *Fanout, send *Send, log *slog.Logger, metrics *Metrics, cfg ConsumerConfig) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Pipeline{js: js, fan: fan, send: send, cfg: cfg.withDefaults(), log: log, metrics: metrics}, nil
}

// Run consumes both streams until ctx ends. Messages being handled when ctx
// ends are not acknowledged and come back after AckWait.
func (p *Pipeline) Run(ctx context.Context) error {
	posts, err := p.consumer(ctx, PostsStream, FanoutConsumer, p.cfg.FanoutWorkers, nil)
	if err != nil {
		return err
	}
	// The later-page consumer is narrowed first: a work queue refuses two
	// consumers whose subjects overlap.
	laterLanes := make([]string, 0, Lanes-1)
	for lane := 1; lane < Lanes; lane++ {
		laterLanes = append(laterLanes, DeliveriesSubjectPrefix+strconv.Itoa(lane))
	}
	later, err := p.consumer(ctx, DeliveriesStream, SenderConsumer, p.cfg.SendWorkers, laterLanes)
	if err != nil {
		return err
	}
	first, err := p.consumer(ctx, DeliveriesStream, FirstSenderConsumer, p.cfg.FirstWorkers, []string{FirstLaneSubject})
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.consume(ctx, posts, p.cfg.FanoutWorkers, p.handlePost) })
	g.Go(func() error { return p.consume(ctx, first, p.cfg.FirstWorkers, p.handleBatch) })
	g.Go(func() error { return p.consume(ctx, later, p.cfg.SendWorkers, p.handleBatch) })
	return g.Wait()
}

func (p *Pipeline) consumer(ctx context.Context, stream, durable string, workers int, subjects []string) (jetstream.Consumer, error) {
	c, err := p.js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:        durable,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        p.cfg.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  workers * 4,
		FilterSubjects: subjects,
	})
	if err != nil {
		return nil, fmt.Errorf("fanout: consumer %s on %s: %w", durable, stream, err)
	}
	return c, nil
}

// consume feeds messages from c to workers goroutines until ctx ends.
func (p *Pipeline) consume(ctx context.Context, c jetstream.Consumer, workers int, handle func(context.Context, jetstream.Msg)) error {
	iter, err := c.Messages(jetstream.PullMaxMessages(workers * 2))
	if err != nil {
		return fmt.Errorf("fanout: pull: %w", err)
	}
	stop := context.AfterFunc(ctx, iter.Stop)
	defer stop()
	msgs := make(chan jetstream.Msg)
	g, ctx := errgroup.WithContext(ctx)
	for range workers {
		g.Go(func() error {
			for m := range msgs {
				handle(ctx, m)
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(msgs)
		for {
			m, err := iter.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				return fmt.Errorf("fanout: pull: %w", err) // the caller recreates it
			}
			if err != nil {
				// Heartbeat misses and reconnects are transient; the
				// iterator keeps pulling once the server is back.
				p.log.Debug("pull", "err", err)
				select {
				case <-time.After(100 * time.Millisecond):
				case <-ctx.Done():
					return nil
				}
				continue
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return nil
			}
		}
	})
	return g.Wait()
}

func (p *Pipeline) handlePost(ctx context.Context, m jetstream.Msg) {
	post, err := starling.DecodePost(m.Data())
	if err != nil {
		p.poison(m, err)
		return
	}
	n, err := p.fan.Fan(ctx, post, func() { _ = m.InProgress() })
	if err != nil {
		p.log.Warn("fanout failed; will retry", "post", post.ID, "author", post.Author, "err", err)
		_ = m.NakWithDelay(p.cfg.RetryDelay)
		return
	}
	p.log.Debug("fanned out", "post", post.ID, "author", post.Author, "batches", n)
	p.ack(m)
}

func (p *Pipeline) handleBatch(ctx context.Context, m jetstream.Msg) {
	b, err := DecodeBatch(m.Data())
	if err != nil {
		p.poison(m, err)
		return
	}
	if err := p.send.Deliver(ctx, b); err != nil {
		p.log.Warn("batch not delivered; will retry", "batch", b.MsgID(), "err", err)
		_ = m.NakWithDelay(p.cfg.RetryDelay)
		return
	}
	p.ack(m)
}

func (p *Pipeline) ack(m jetstream.Msg) {
	if err := m.Ack(); err != nil {
		p.log.Warn("ack failed; message will be redelivered", "subject", m.Subject(), "err", err)
	}
}

func (p *Pipeline) poison(m jetstream.Msg, err error) {
	p.metrics.undecodable()
	p.log.Error("dropping undecodable message", "subject", m.Subject(), "err", fmt.Errorf("%w: %w", errPoison, err))
	_ = m.Term()
}
