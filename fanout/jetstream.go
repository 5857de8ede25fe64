package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"starling.dev/starling"
)

// duplicateWindow is how long JetStream remembers a Nats-Msg-Id; it must
// outlast a publisher's retries.
const duplicateWindow = 2 * time.Minute

// The defaults of StreamLimits, each the meaning of a zero field.
const (
	// DefaultPostsMaxAge keeps posts a week for replays and timelines.
	DefaultPostsMaxAge = 7 * 24 * time.Hour
	// DefaultPostsMaxBytes bounds POSTS on disk (about a million posts).
	DefaultPostsMaxBytes = 1 << 30
	// DefaultDeliveriesMaxAge drops a batch that has waited a day: a
	// delivery that late is not worth sending (the send stage skips most
	// of them much earlier, see ConsumerConfig.MaxLag).
	DefaultDeliveriesMaxAge = 24 * time.Hour
	// DefaultDeliveriesMaxBytes bounds DELIVERIES on disk: about two
	// million batches of a few followers, or a few hundred thousand full
	// ones.
	DefaultDeliveriesMaxBytes = 1 << 30
)

// StreamLimits bounds the POSTS and DELIVERIES streams, so that a long
// outage of the XMPP server (or of every gateway) fills neither the disk nor,
// once it ends, the followers' clients. Both processes create the streams
// with the limits they were given: configure them alike.
type StreamLimits struct {
	// PostsMaxAge is how long POSTS keeps a post, fanned out or not; zero
	// means DefaultPostsMaxAge, negative no limit.
	PostsMaxAge time.Duration
	// PostsMaxBytes bounds POSTS; when it is full the oldest posts are
	// dropped (they were fanned out long ago). Zero means
	// DefaultPostsMaxBytes, negative no bound.
	PostsMaxBytes int64
	// DeliveriesMaxAge is how long a batch may wait in DELIVERIES before
	// JetStream drops it unsent (uncounted: MaxLag, well below it, is what
	// skips late batches and counts them); zero means
	// DefaultDeliveriesMaxAge, negative no limit.
	DeliveriesMaxAge time.Duration
	// DeliveriesMaxBytes bounds DELIVERIES; when it is full new batches are
	// refused, so the fanout of the post fails and is retried with growing
	// delays (and dead-lettered once out of attempts) instead of anything
	// queued being dropped unseen. Zero means DefaultDeliveriesMaxBytes,
	// negative no bound.
	DeliveriesMaxBytes int64
	// Replicas is how many servers of a JetStream cluster hold each stream
	// (POSTS, DELIVERIES and DEADLETTER): 3 on a 3-node cluster survives
	// the loss of any one node. Zero means 1; at most MaxReplicas. A stream
	// that exists already is scaled to it (JetStream allows that on a
	// cluster). A single server refuses more than 1.
	Replicas int
}

// MaxReplicas is the most replicas JetStream keeps of a stream.
const MaxReplicas = 5

func (l StreamLimits) withDefaults() StreamLimits {
	orDefault(&l.PostsMaxAge, DefaultPostsMaxAge)
	orDefault(&l.PostsMaxBytes, DefaultPostsMaxBytes)
	orDefault(&l.DeliveriesMaxAge, DefaultDeliveriesMaxAge)
	orDefault(&l.DeliveriesMaxBytes, DefaultDeliveriesMaxBytes)
	l.PostsMaxBytes = max(l.PostsMaxBytes, -1) // JetStream's "no limit"
	l.DeliveriesMaxBytes = max(l.DeliveriesMaxBytes, -1)
	l.PostsMaxAge = max(l.PostsMaxAge, 0) // likewise
	l.DeliveriesMaxAge = max(l.DeliveriesMaxAge, 0)
	l.Replicas = max(l.Replicas, 1)
	return l
}

// Validate reports whether the limits are usable.
func (l StreamLimits) Validate() error {
	// JetStream refuses a stream whose age limit is shorter than its
	// duplicate window.
	if (l.PostsMaxAge > 0 && l.PostsMaxAge < duplicateWindow) || (l.DeliveriesMaxAge > 0 && l.DeliveriesMaxAge < duplicateWindow) {
		return fmt.Errorf("fanout: stream age limits must be at least %s, the duplicate window", duplicateWindow)
	}
	if l.Replicas < 0 || l.Replicas > MaxReplicas {
		return fmt.Errorf("fanout: stream replicas %d: use 1 to %d", l.Replicas, MaxReplicas)
	}
	return nil
}

// EnsureStreams creates or updates the POSTS, DELIVERIES and DEADLETTER
// streams with the given limits and replicas. Both processes call it at
// start, so either may come up first. On a freshly formed cluster it may
// time out while the servers elect their leaders: callers retry.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, limits StreamLimits) error {
	if err := limits.Validate(); err != nil {
		return err
	}
	limits = limits.withDefaults()
	streams := []jetstream.StreamConfig{{
		Name:       PostsStream,
		Subjects:   []string{PostsSubjectPrefix + "*"},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		MaxAge:     limits.PostsMaxAge,
		MaxBytes:   limits.PostsMaxBytes,
		Discard:    jetstream.DiscardOld,
		Duplicates: duplicateWindow,
	}, {
		Name:       DeliveriesStream,
		Subjects:   []string{deliveriesSubjectPrefix + "*"},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.WorkQueuePolicy,
		MaxAge:     limits.DeliveriesMaxAge,
		MaxBytes:   limits.DeliveriesMaxBytes,
		Discard:    jetstream.DiscardNew,
		Duplicates: duplicateWindow,
	}, deadLetterStreamConfig()}
	for _, cfg := range streams {
		cfg.Replicas = limits.Replicas
		if err := ensureStream(ctx, js, cfg); err != nil {
			return fmt.Errorf("fanout: ensure stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// Bounds of ensureStream's attempts: creating a stream on a healthy
// cluster takes well under a second, and all attempts together last as
// long as one request with nats.go's default timeout.
const (
	streamAttemptTimeout = time.Second
	streamAttempts       = 5
)

// ensureStream creates or updates one stream, trying again at once when an
// attempt gets no answer: when two processes create the same replicated
// stream at the same moment (the gateway and the API starting together on
// a JetStream cluster), nats-server 2.15 creates it but may answer neither
// (nats-server issue 3677); the next attempt finds the stream and answers.
// Without this each stream cost the whole request timeout.
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) error {
	var err error
	for range streamAttempts {
		actx, cancel := context.WithTimeout(ctx, streamAttemptTimeout)
		_, err = js.CreateOrUpdateStream(actx, cfg)
		cancel()
		if err == nil || ctx.Err() != nil || !(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) {
			return err
		}
	}
	return err
}

// PostPublisher publishes posts to the POSTS stream and waits for the ack.
type PostPublisher struct {
	js jetstream.JetStream
}

// NewPostPublisher returns a publisher over js; the caller owns the connection.
func NewPostPublisher(js jetstream.JetStream) *PostPublisher {
	return &PostPublisher{js: js}
}

// PublishPost stores p durably. It returns only after JetStream acknowledged
// the message; duplicate reports that a message with the same id was already
// stored (a retry), so the caller must not count it twice.
func (p *PostPublisher) PublishPost(ctx context.Context, post starling.Post) (duplicate bool, err error) {
	data, err := json.Marshal(post)
	if err != nil {
		return false, fmt.Errorf("fanout: encode post: %w", err)
	}
	ack, err := p.js.Publish(ctx, PostSubject(post.Author), data,
		jetstream.WithMsgID(post.ID), jetstream.WithExpectStream(PostsStream))
	if err != nil {
		return false, fmt.Errorf("fanout: publish post %s: %w", post.ID, err)
	}
	return ack.Duplicate, nil
}

// JetStreamSink is the BatchSink that publishes batches asynchronously to the
// DELIVERIES stream. The bound on pending publishes is set on the JetStream
// context (jetstream.WithPublishAsyncMaxPending) by whoever creates it.
type JetStreamSink struct {
	js jetstream.JetStream
}

var _ BatchSink = (*JetStreamSink)(nil)

// NewJetStreamSink returns a sink over js.
func NewJetStreamSink(js jetstream.JetStream) *JetStreamSink { return &JetStreamSink{js: js} }

// PublishBatch encodes b at once (so the caller may reuse b.To) and starts
// publishing it. The returned Pending resolves when JetStream has stored it.
func (s *JetStreamSink) PublishBatch(ctx context.Context, b Batch) (Pending, error) {
	data, err := b.Encode(make([]byte, 0, 64+len(b.To)*32))
	if err != nil {
		return nil, err
	}
	subject := laneSubject(b.Page)
	f, err := s.js.PublishAsync(subject, data, jetstream.WithMsgID(b.MsgID()))
	if err != nil {
		return nil, fmt.Errorf("fanout: publish batch %s: %w", b.MsgID(), err)
	}
	return pubFuture{f}, nil
}

type pubFuture struct{ f jetstream.PubAckFuture }

func (p pubFuture) Wait(ctx context.Context) error {
	select {
	case <-p.f.Ok():
		return nil
	case err := <-p.f.Err():
		return fmt.Errorf("fanout: batch not stored: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lanes is the number of DELIVERIES subjects (starling.deliver.0 …
// starling.deliver.<lanes-1>). Lane 0 carries the first page of every post,
// which is all of a small author's post, and has consumers of its own, so a
// celebrity's thousands of later pages (spread over lanes 1 to lanes-1) never
// queue ahead of it.
const lanes = 16

// firstLaneSubject is the subject of every post's first batch.
const firstLaneSubject = deliveriesSubjectPrefix + "0"

func laneSubject(page int) string {
	if page == 0 {
		return firstLaneSubject
	}
	return deliveriesSubjectPrefix + strconv.Itoa(1+page%(lanes-1))
}
