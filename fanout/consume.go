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

// The pipeline's defaults, each the meaning of a zero field of
// ConsumerConfig (or of NewSend's readyWait).
const (
	defaultFanoutWorkers = 4
	defaultSendWorkers   = 4
	defaultFirstWorkers  = 2
	defaultAckWait       = 30 * time.Second
	defaultRetryDelay    = time.Second
	defaultMaxRetryDelay = time.Minute
	// A post fails when Redis or JetStream does: 20 attempts, backing off
	// to a minute apart, ride out about a quarter of an hour of outage.
	defaultPostMaxDeliver = 20
	// A batch fails when no component link is up (each attempt first waits
	// defaultReadyWait for one): 50 attempts ride out about an hour of
	// XMPP server outage before the batch is dead-lettered.
	defaultBatchMaxDeliver = 50
	defaultReadyWait       = 10 * time.Second
)

// Flow control of one consumer, in multiples of its workers: enough
// outstanding messages that no worker idles between pulls, few enough that
// a stopped replica holds little work others could do.
const (
	ackPendingPerWorker = 4
	pullPerWorker       = 2
	// pullErrorPause spaces the retries of a pull that failed transiently.
	pullErrorPause = 100 * time.Millisecond
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
	// RetryDelay is how long a message waits before redelivery after its
	// first failure; each further failure doubles it, up to MaxRetryDelay.
	// Zero means 1 s.
	RetryDelay time.Duration
	// MaxRetryDelay caps the growing delay between attempts; zero means
	// 1 min.
	MaxRetryDelay time.Duration
	// PostMaxDeliver is how many times a post is attempted before it is
	// dead-lettered; zero means 20, negative means retry forever.
	PostMaxDeliver int
	// BatchMaxDeliver is how many times a delivery batch is attempted
	// before it is dead-lettered; zero means 50, negative means retry
	// forever.
	BatchMaxDeliver int
}

func (c ConsumerConfig) withDefaults() ConsumerConfig {
	orDefault(&c.FanoutWorkers, defaultFanoutWorkers)
	orDefault(&c.SendWorkers, defaultSendWorkers)
	orDefault(&c.FirstWorkers, defaultFirstWorkers)
	orDefault(&c.AckWait, defaultAckWait)
	orDefault(&c.RetryDelay, defaultRetryDelay)
	orDefault(&c.MaxRetryDelay, defaultMaxRetryDelay)
	orDefault(&c.PostMaxDeliver, defaultPostMaxDeliver)
	orDefault(&c.BatchMaxDeliver, defaultBatchMaxDeliver)
	c.MaxRetryDelay = max(c.MaxRetryDelay, c.RetryDelay)
	return c
}

func orDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Validate reports whether the configuration is usable.
func (c ConsumerConfig) Validate() error {
	if c.FanoutWorkers < 0 || c.SendWorkers < 0 || c.FirstWorkers < 0 ||
		c.AckWait < 0 || c.RetryDelay < 0 || c.MaxRetryDelay < 0 {
		return errors.New("fanout: consumer settings must not be negative")
	}
	return nil
}

// retryDelay is how long a message that failed its attempt'th delivery
// waits: RetryDelay, doubling with each attempt, at most MaxRetryDelay.
//
// The delay is given with each Nak rather than as the consumer's BackOff,
// because a BackOff also replaces AckWait with its first step: a batch
// still in flight after a second would be redelivered and duplicated.
func (c ConsumerConfig) retryDelay(attempt uint64) time.Duration {
	d := c.RetryDelay
	for i := uint64(1); i < attempt && d < c.MaxRetryDelay; i++ {
		d *= 2
	}
	return min(d, c.MaxRetryDelay)
}

// Pipeline runs both stages on their JetStream consumers. A message that
// cannot be decoded, or that has failed every attempt, is copied to the
// DEADLETTER stream (see EnsureStreams) and terminated, so it neither
// blocks the messages behind it nor vanishes without a trace.
type Pipeline struct {
	js      jetstream.JetStream
	fan     *Fanout
	send    *Send
	cfg     ConsumerConfig
	log     *slog.Logger
	metrics *Metrics
}

// NewPipeline wires the stages to JetStream. Call EnsureStreams first.
// metrics may be nil.
func NewPipeline(js jetstream.JetStream, fan *Fanout, send *Send, log *slog.Logger, metrics *Metrics, cfg ConsumerConfig) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Pipeline{js: js, fan: fan, send: send, cfg: cfg.withDefaults(), log: log, metrics: metrics}, nil
}

// stage is one consumer's work: how to handle a message and how often to
// try before giving up on it.
type stage struct {
	stream     string
	workers    int
	maxDeliver int // attempts; not positive means unbounded
	handle     func(context.Context, jetstream.Msg) error
}

// Run consumes both streams until ctx ends. Messages being handled when ctx
// ends are not acknowledged and come back after AckWait.
func (p *Pipeline) Run(ctx context.Context) error {
	posts := stage{PostsStream, p.cfg.FanoutWorkers, p.cfg.PostMaxDeliver, p.handlePost}
	first := stage{DeliveriesStream, p.cfg.FirstWorkers, p.cfg.BatchMaxDeliver, p.handleBatch}
	later := stage{DeliveriesStream, p.cfg.SendWorkers, p.cfg.BatchMaxDeliver, p.handleBatch}
	postsC, err := p.consumer(ctx, posts, FanoutConsumer, nil)
	if err != nil {
		return err
	}
	// The later-page consumer is narrowed first: a work queue refuses two
	// consumers whose subjects overlap.
	laterLanes := make([]string, 0, lanes-1)
	for lane := 1; lane < lanes; lane++ {
		laterLanes = append(laterLanes, deliveriesSubjectPrefix+strconv.Itoa(lane))
	}
	laterC, err := p.consumer(ctx, later, SenderConsumer, laterLanes)
	if err != nil {
		return err
	}
	firstC, err := p.consumer(ctx, first, firstSenderConsumer, []string{firstLaneSubject})
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.consume(ctx, postsC, posts) })
	g.Go(func() error { return p.consume(ctx, firstC, first) })
	g.Go(func() error { return p.consume(ctx, laterC, later) })
	return g.Wait()
}

func (p *Pipeline) consumer(ctx context.Context, s stage, durable string, subjects []string) (jetstream.Consumer, error) {
	// One delivery more than the attempts: if the last attempt never
	// answers (the process died), that extra delivery dead-letters the
	// message instead of the server dropping it.
	maxDeliver := -1
	if s.maxDeliver > 0 {
		maxDeliver = s.maxDeliver + 1
	}
	c, err := p.js.CreateOrUpdateConsumer(ctx, s.stream, jetstream.ConsumerConfig{
		Durable:        durable,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        p.cfg.AckWait,
		MaxDeliver:     maxDeliver,
		MaxAckPending:  s.workers * ackPendingPerWorker,
		FilterSubjects: subjects,
	})
	if err != nil {
		return nil, fmt.Errorf("fanout: consumer %s on %s: %w", durable, s.stream, err)
	}
	return c, nil
}

// consume feeds messages from c to s.workers goroutines until ctx ends.
func (p *Pipeline) consume(ctx context.Context, c jetstream.Consumer, s stage) error {
	iter, err := c.Messages(jetstream.PullMaxMessages(s.workers * pullPerWorker))
	if err != nil {
		return fmt.Errorf("fanout: pull: %w", err)
	}
	stop := context.AfterFunc(ctx, iter.Stop)
	defer stop()
	msgs := make(chan jetstream.Msg)
	g, ctx := errgroup.WithContext(ctx)
	for range s.workers {
		g.Go(func() error {
			for m := range msgs {
				p.process(ctx, s, m)
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
				case <-time.After(pullErrorPause):
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

// process handles one message and settles it: ack on success, a delayed
// redelivery on failure, the dead-letter stream for poison and for a
// message out of attempts.
func (p *Pipeline) process(ctx context.Context, s stage, m jetstream.Msg) {
	var attempt uint64 = 1
	if meta, err := m.Metadata(); err == nil {
		attempt = meta.NumDelivered
	}
	if s.maxDeliver > 0 && attempt > uint64(s.maxDeliver) {
		p.deadLetter(ctx, s, m, reasonExhausted, errors.New("the last attempt did not finish within AckWait"))
		return
	}
	err := s.handle(ctx, m)
	switch {
	case err == nil:
		p.ack(m)
	case ctx.Err() != nil:
		// Shutting down: left unacknowledged, the message comes back.
	case errors.Is(err, errPoison):
		p.deadLetter(ctx, s, m, reasonUndecodable, err)
	case s.maxDeliver > 0 && attempt >= uint64(s.maxDeliver):
		p.deadLetter(ctx, s, m, reasonExhausted, err)
	default:
		delay := p.cfg.retryDelay(attempt)
		p.log.Warn("will retry", "subject", m.Subject(), "attempt", attempt, "delay", delay, "err", err)
		p.nak(m, delay)
	}
}

func (p *Pipeline) handlePost(ctx context.Context, m jetstream.Msg) error {
	post, err := starling.DecodePost(m.Data())
	if err != nil {
		return fmt.Errorf("%w: %w", errPoison, err)
	}
	n, err := p.fan.Fan(ctx, post, func() { _ = m.InProgress() })
	if err != nil {
		return fmt.Errorf("fanout: post %s by %s: %w", post.ID, post.Author, err)
	}
	p.log.Debug("fanned out", "post", post.ID, "author", post.Author, "batches", n)
	return nil
}

func (p *Pipeline) handleBatch(ctx context.Context, m jetstream.Msg) error {
	b, err := DecodeBatch(m.Data())
	if err != nil {
		return fmt.Errorf("%w: %w", errPoison, err)
	}
	if err := p.send.Deliver(ctx, b); err != nil {
		return fmt.Errorf("fanout: batch %s: %w", b.MsgID(), err)
	}
	return nil
}

func (p *Pipeline) ack(m jetstream.Msg) {
	if err := m.Ack(); err != nil {
		p.log.Warn("ack failed; message will be redelivered", "subject", m.Subject(), "err", err)
	}
}

func (p *Pipeline) nak(m jetstream.Msg, delay time.Duration) {
	if err := m.NakWithDelay(delay); err != nil {
		p.log.Warn("nak failed; message will be redelivered after AckWait", "subject", m.Subject(), "err", err)
	}
}
