package fanout

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"starling.dev/starling"
)

// TestEnsureStreamsLimits: the limits reach the streams (defaults for zero,
// none for negative), with the discard policy each stream needs, and a
// second EnsureStreams with other limits updates them in place.
func TestEnsureStreamsLimits(t *testing.T) {
	js := startJetStream(t) // default limits
	ctx := context.Background()
	config := func(name string) jetstream.StreamConfig {
		t.Helper()
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.Config
	}
	posts, deliveries := config(PostsStream), config(DeliveriesStream)
	if posts.MaxAge != DefaultPostsMaxAge || posts.MaxBytes != DefaultPostsMaxBytes || posts.Discard != jetstream.DiscardOld {
		t.Errorf("POSTS: age %s, bytes %d, discard %s", posts.MaxAge, posts.MaxBytes, posts.Discard)
	}
	if deliveries.MaxAge != DefaultDeliveriesMaxAge || deliveries.MaxBytes != DefaultDeliveriesMaxBytes || deliveries.Discard != jetstream.DiscardNew {
		t.Errorf("DELIVERIES: age %s, bytes %d, discard %s", deliveries.MaxAge, deliveries.MaxBytes, deliveries.Discard)
	}

	limits := StreamLimits{PostsMaxAge: -1, PostsMaxBytes: 1 << 20, DeliveriesMaxAge: 3 * time.Hour, DeliveriesMaxBytes: -1}
	if err := EnsureStreams(ctx, js, limits); err != nil {
		t.Fatal(err)
	}
	posts, deliveries = config(PostsStream), config(DeliveriesStream)
	if posts.MaxAge != 0 || posts.MaxBytes != 1<<20 || deliveries.MaxAge != 3*time.Hour || deliveries.MaxBytes != -1 {
		t.Errorf("after update: POSTS age %s bytes %d; DELIVERIES age %s bytes %d",
			posts.MaxAge, posts.MaxBytes, deliveries.MaxAge, deliveries.MaxBytes)
	}
	if err := EnsureStreams(ctx, js, StreamLimits{DeliveriesMaxAge: time.Minute}); err == nil {
		t.Error("an age limit below the duplicate window was accepted")
	}
}

// TestFullDeliveriesRefusesBatches: a full DELIVERIES refuses new batches
// (the post's fanout fails and is retried) instead of dropping queued ones.
func TestFullDeliveriesRefusesBatches(t *testing.T) {
	js := startJetStream(t)
	ctx := context.Background()
	if err := EnsureStreams(ctx, js, StreamLimits{DeliveriesMaxBytes: 4096}); err != nil {
		t.Fatal(err)
	}
	sink := NewJetStreamSink(js)
	var refused error
	for page := 0; page < 100 && refused == nil; page++ {
		p, err := sink.PublishBatch(ctx, Batch{Post: starling.Post{ID: "p1", Author: "alice", Text: "hi"}, Page: page, To: []string{"bob@example.org"}})
		if err == nil {
			err = p.Wait(ctx)
		}
		refused = err
	}
	if refused == nil {
		t.Fatal("4 KiB of DELIVERIES took 100 batches")
	}
	s, err := js.Stream(ctx, DeliveriesStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.FirstSeq != 1 {
		t.Errorf("the oldest batches were dropped (first sequence %d): %v", info.State.FirstSeq, refused)
	}
}
