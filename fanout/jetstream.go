package fanout

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"starling.dev/starling"
)

// Stream limits. Posts are kept a week for replays and timelines; the
// duplicate window must outlast a publisher's retries.
const (
	postsMaxAge     = 7 * 24 * time.Hour
	duplicateWindow = 2 * time.Minute
)

// EnsureStreams creates or updates the POSTS, DELIVERIES and DEADLETTER
// streams. Both processes call it at start, so either may come up first.
func EnsureStreams(ctx context.Context, js jetstream.JetStream) error {
	streams := []jetstream.StreamConfig{{
		Name:       PostsStream,
		Subjects:   []string{PostsSubjectPrefix + "*"},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		MaxAge:     postsMaxAge,
		Duplicates: duplicateWindow,
	}, {
		Name:       DeliveriesStream,
		Subjects:   []string{deliveriesSubjectPrefix + "*"},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.WorkQueuePolicy,
		Duplicates: duplicateWindow,
	}, deadLetterStreamConfig()}
	for _, cfg := range streams {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("fanout: ensure stream %s: %w", cfg.Name, err)
		}
	}
	return nil
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
