package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
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
	defaultAckWait       = 10 * time.Second
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
	// Handlers get this long to finish at shutdown; a delivery batch is
	// confirmed by the XMPP server in well under a second.
	defaultShutdownGrace = 5 * time.Second
	defaultMaxHold       = 2 * time.Minute
)

// DefaultMaxLag is ConsumerConfig.MaxLag's default: a post an hour old is
// news no longer worth a chat message, so after a long outage followers get
// what is recent, not a flood of the backlog.
const DefaultMaxLag = time.Hour

// Flow control of one consumer, in multiples of its workers: enough
// outstanding messages that no worker idles between pulls, few enough that
// a stopped replica holds little work others could do.
const (
	ackPendingPerWorker = 4
	pullPerWorker       = 2
	// pullErrorPause spaces the retries of a pull that failed transiently.
	pullErrorPause = 100 * time.Millisecond
	// pullExpiry and pullHeartbeat shape each pull request: the server
	// sends a heartbeat every pullHeartbeat while it has nothing, and the
	// client pulls anew after two missed ones. When a stream's leader dies
	// in a JetStream cluster, the pull parked on it dies too; with the
	// client's defaults (30 s, 15 s) deliveries then stalled for 30 s, with
	// these for the election plus ~2 s.
	pullExpiry    = 10 * time.Second
	pullHeartbeat = time.Second
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
	// AckWait is how long JetStream waits for an ack, or for a sign of life,
	// before redelivering: a handler says "in progress" every AckWait/3, so
	// this bounds only how long a dead gateway's messages wait for another.
	// Zero means 10 s.
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
	// MaxLag is the age (since the author posted) past which a post is no
	// longer delivered: the fanout stage records it but makes no batches,
	// and the send stage acknowledges its batches without sending them,
	// counting both (starling_fanout_stale_*_total). Retractions are always
	// delivered. Zero means 1 h, negative means no limit.
	MaxLag time.Duration
	// ShutdownGrace is how long the messages being handled when Run's
	// context ends may take to finish (and be acknowledged); those still
	// running then, and those fetched but not started, are handed back to
	// JetStream at once for another replica. Zero means 5 s.
	ShutdownGrace time.Duration
	// MaxHold is how long a handler keeps its message alive; past it the
	// handler is taken for stuck and JetStream redelivers the message after
	// AckWait (to this gateway or another). Every handler's work is bounded
	// far below it (ping and store timeouts). Zero means 2 minutes.
	MaxHold time.Duration
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
	orDefault(&c.MaxLag, DefaultMaxLag)
	orDefault(&c.ShutdownGrace, defaultShutdownGrace)
	orDefault(&c.MaxHold, defaultMaxHold)
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
		c.AckWait < 0 || c.RetryDelay < 0 || c.MaxRetryDelay < 0 || c.ShutdownGrace < 0 || c.MaxHold < 0 {
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

// PostRecorder keeps the posts the pipeline fans out in their author's
// history, where the API finds them (GET and DELETE /v1/statuses/{id}).
type PostRecorder interface {
	// RecordPost stores a post; storing it again changes nothing, and a
	// post already deleted (retracted) must stay deleted.
	RecordPost(ctx context.Context, p starling.Post) error
}

// Pipeline runs both stages on their JetStream consumers. A message that
// cannot be decoded, or that has failed every attempt, is copied to the
// DEADLETTER stream (see EnsureStreams) and terminated, so it neither
// blocks the messages behind it nor vanishes without a trace.
type Pipeline struct {
	js      jetstream.JetStream
	fan     *Fanout
	send    *Send
	rec     PostRecorder
	cfg     ConsumerConfig
	log     *slog.Logger
	metrics *Metrics
	stale   staleLog
}

// NewPipeline wires the stages to JetStream. Call EnsureStreams first.
// rec records every post before it is fanned out, so that the author's
// history holds whatever followers may get even when the API could not
// record it; nil records nothing. metrics may be nil.
func NewPipeline(js jetstream.JetStream, fan *Fanout, send *Send, rec PostRecorder, log *slog.Logger, metrics *Metrics, cfg ConsumerConfig) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Pipeline{js: js, fan: fan, send: send, rec: rec, cfg: cfg.withDefaults(), log: log, metrics: metrics}, nil
}

// stage is one consumer's work: how to handle a message and how often to
// try before giving up on it.
type stage struct {
	stream     string
	workers    int
	maxDeliver int // attempts; not positive means unbounded
	handle     func(context.Context, jetstream.Msg) error
}

// Run consumes both streams until ctx ends, then shuts down in order: it
// stops pulling, lets the messages being handled finish for up to
// ShutdownGrace (they are acknowledged as usual), and hands back to
// JetStream at once (a Nak without delay) those still running then and
// those fetched but not started, so that another replica, or this one
// restarted, takes them without waiting for AckWait. It returns when every
// message it fetched is settled; the caller may then close the component
// and drain NATS (which flushes the acks and Naks).
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
	g.Go(func() error { return p.consumeLinked(ctx, firstC, first) })
	g.Go(func() error { return p.consumeLinked(ctx, laterC, later) })
	return g.Wait()
}

// LinkWatcher is implemented by a StanzaSender that can tell when its link
// to the XMPP server is up. The pipeline then pulls delivery batches only
// while it is: a replica without a working link (a standby against Prosody,
// which takes one component connection per domain; a gateway whose server
// is down) leaves them to the replicas that can send them, instead of
// holding each one for the send stage's readyWait.
type LinkWatcher interface {
	// LinkUp blocks until a link is up or ctx ends; the channel it returns
	// is closed when that link ends.
	LinkUp(ctx context.Context) (down <-chan struct{}, err error)
}

// consumeLinked is consume for a delivery stage: when the sender is a
// LinkWatcher, it consumes only while the link is up. When the link goes
// down it stops pulling exactly as Run does at shutdown (the handlers get
// ShutdownGrace, the messages fetched but not started are handed back at
// once), then waits for the next link.
func (p *Pipeline) consumeLinked(ctx context.Context, c jetstream.Consumer, s stage) error {
	var lw LinkWatcher
	if p.send != nil {
		lw, _ = p.send.sender.(LinkWatcher)
	}
	if lw == nil {
		return p.consume(ctx, c, s)
	}
	for {
		down, err := lw.LinkUp(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("fanout: wait for the component link: %w", err)
		}
		linked, cancel := context.WithCancel(ctx)
		go func() { // ends with linked, at the latest when consume returns
			select {
			case <-down:
				cancel()
			case <-linked.Done():
			}
		}()
		err = p.consume(linked, c, s)
		cancel()
		if err != nil || ctx.Err() != nil {
			return err
		}
		p.log.Info("component link down: stopped pulling deliveries until it is back", "stream", s.stream, "workers", s.workers)
	}
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

// consume feeds messages from c to s.workers goroutines until ctx ends
// (see Run for the shutdown).
func (p *Pipeline) consume(ctx context.Context, c jetstream.Consumer, s stage) error {
	iter, err := c.Messages(jetstream.PullMaxMessages(s.workers*pullPerWorker),
		jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat))
	if err != nil {
		return fmt.Errorf("fanout: pull: %w", err)
	}
	// Handlers run on work, which outlives ctx by the grace period: a
	// batch about to be confirmed is still acknowledged.
	work, endWork := afterGrace(ctx, p.cfg.ShutdownGrace)
	defer endWork()
	// Drain, not Stop: Stop drops the messages already pulled, which then
	// wait out AckWait; drained, they are read below and handed back.
	stopDrain := context.AfterFunc(ctx, iter.Drain)
	defer stopDrain()
	defer iter.Stop() // after a drain that did not finish within the grace

	msgs := make(chan jetstream.Msg)
	var workers sync.WaitGroup
	for range s.workers {
		workers.Go(func() {
			for m := range msgs {
				p.process(work, s, m)
			}
		})
	}
	err = p.feed(ctx, work, iter, msgs)
	close(msgs)
	workers.Wait()
	return err
}

// feed passes the iterator's messages to the workers until ctx ends, then
// releases what the drained iterator still holds, until it is empty or
// work ends.
func (p *Pipeline) feed(ctx, work context.Context, iter jetstream.MessagesContext, msgs chan<- jetstream.Msg) error {
	for {
		m, err := iter.Next(jetstream.NextContext(work))
		if err == nil {
			p.dispatch(ctx, m, msgs)
			continue
		}
		switch {
		case errors.Is(err, jetstream.ErrMsgIteratorClosed), work.Err() != nil:
			return nil
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
			return fmt.Errorf("fanout: pull: %w", err) // the caller recreates it
		}
		// Heartbeat misses and reconnects are transient; the iterator
		// keeps pulling once the server is back.
		p.log.Debug("pull", "err", err)
		select {
		case <-time.After(pullErrorPause):
		case <-work.Done():
			return nil
		}
	}
}

// dispatch hands m to a worker, or back to JetStream once ctx has ended.
func (p *Pipeline) dispatch(ctx context.Context, m jetstream.Msg, msgs chan<- jetstream.Msg) {
	if ctx.Err() != nil {
		p.release(m)
		return
	}
	select {
	case msgs <- m:
	case <-ctx.Done():
		p.release(m)
	}
}

// afterGrace returns a context that ends grace after parent does, and a
// function to end it sooner (call it when done).
func afterGrace(parent context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	stop := context.AfterFunc(parent, func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		cancel()
	})
	return ctx, func() { stop(); cancel() }
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
	stop := keepAlive(m, p.cfg.AckWait/3, p.cfg.MaxHold)
	err := s.handle(ctx, m)
	stop()
	switch {
	case err == nil:
		p.ack(m)
	case ctx.Err() != nil:
		// Cut off at shutdown after the grace: not the message's fault.
		p.release(m)
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

// keepAlive tells JetStream every interval that m is still being worked on,
// until the returned function is called or maxHold has passed. AckWait can
// then be short, which is how long the messages of a gateway that died
// without a word (kill -9, a lost server) wait before another gateway gets
// them, while a handler that legitimately takes longer (a slow XMPP server,
// a big page) is not redelivered under its feet.
func keepAlive(m jetstream.Msg, interval, maxHold time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		giveUp := time.NewTimer(maxHold)
		defer giveUp.Stop()
		for {
			select {
			case <-done:
				return
			case <-giveUp.C:
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// handlePost records the post in its author's history and fans it out. The
// record comes first, so a post that reaches anyone is in the history even
// if the API failed to record it (or saw it as a duplicate); a failed
// record is retried like a failed fanout.
func (p *Pipeline) handlePost(ctx context.Context, m jetstream.Msg) error {
	post, err := starling.DecodePost(m.Data())
	if err != nil {
		return fmt.Errorf("%w: %w", errPoison, err)
	}
	if err := p.record(ctx, post); err != nil {
		return err
	}
	if lag, stale := p.tooOld(post); stale {
		p.metrics.stalePost()
		p.logStale(post, lag, "post too old to deliver: recorded, not fanned out")
		return nil
	}
	n, err := p.fan.Fan(ctx, post, func() { _ = m.InProgress() })
	if err != nil {
		return fmt.Errorf("fanout: post %s by %s: %w", post.ID, post.Author, err)
	}
	p.log.Debug("fanned out", "post", post.ID, "author", post.Author, "batches", n)
	return nil
}

// record stores post in its author's history; retractions are not posts
// (the API removes the post they retract).
func (p *Pipeline) record(ctx context.Context, post starling.Post) error {
	if p.rec == nil || post.Retracts != "" {
		return nil
	}
	if err := p.rec.RecordPost(ctx, post); err != nil {
		return fmt.Errorf("fanout: record post %s by %s: %w", post.ID, post.Author, err)
	}
	return nil
}

// handleBatch sends a batch, or acknowledges it unsent when its post is
// older than MaxLag.
func (p *Pipeline) handleBatch(ctx context.Context, m jetstream.Msg) error {
	b, err := DecodeBatch(m.Data())
	if err != nil {
		return fmt.Errorf("%w: %w", errPoison, err)
	}
	if lag, stale := p.tooOld(b.Post); stale {
		p.metrics.staleBatch(b.Len())
		p.logStale(b.Post, lag, "post too old to deliver: its batches are dropped unsent")
		return nil
	}
	deliver := p.send.Deliver
	if redelivered(m) {
		deliver = p.send.Redeliver // resumed after what was confirmed
	}
	if err := deliver(ctx, b); err != nil {
		return fmt.Errorf("fanout: batch %s: %w", b.MsgID(), err)
	}
	return nil
}

// redelivered reports whether JetStream handed m out before.
func redelivered(m jetstream.Msg) bool {
	meta, err := m.Metadata()
	return err == nil && meta.NumDelivered > 1
}

func (p *Pipeline) ack(m jetstream.Msg) {
	if err := m.Ack(); err != nil {
		p.log.Warn("ack failed; message will be redelivered", "subject", m.Subject(), "err", err)
	}
}

// release hands m back for immediate redelivery, to this replica or another:
// it was not handled because the pipeline is stopping.
func (p *Pipeline) release(m jetstream.Msg) {
	if err := m.Nak(); err != nil {
		p.log.Warn("release failed; message will be redelivered after AckWait", "subject", m.Subject(), "err", err)
	}
}

func (p *Pipeline) nak(m jetstream.Msg, delay time.Duration) {
	if err := m.NakWithDelay(delay); err != nil {
		p.log.Warn("nak failed; message will be redelivered after AckWait", "subject", m.Subject(), "err", err)
	}
}
