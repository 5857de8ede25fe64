package fanout

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"starling.dev/starling/internal/testenv"

	"starling.dev/starling"
)

// TestPipelineSkipsStaleDeliveries: after a long outage, posts older than
// MaxLag are not delivered: their batches are acknowledged unsent and a
// post that old is recorded but not fanned out, each counted and logged
// once per post. Fresh posts and retractions, however old, go out.
func TestPipelineSkipsStaleDeliveries(t *testing.T) {
	r := newRig(t)
	rec := &recorder{}
	pager := &scans{FollowerPager: everyone{"bob@example.org"}}
	snd := &sender{}
	_, _ = r.start(t, pager, nil, snd, rec, ConsumerConfig{MaxLag: time.Hour})

	old := time.Now().Add(-2 * time.Hour)
	stale := starling.Post{ID: "old", Author: "alice", Text: "yesterday's news", CreatedAt: old}
	r.publishBatch(t, stale, 0, "a@x", "b@x")
	r.publishBatch(t, stale, 1, "c@x", "d@x")
	r.publishBatch(t, stale, 2, "e@x")
	r.publishBatch(t, starling.Post{ID: "fresh", Author: "alice", Text: "now", CreatedAt: time.Now()}, 0, "a@x")
	r.publishBatch(t, starling.Post{ID: "undo", Author: "alice", Retracts: "older", CreatedAt: old}, 0, "a@x")
	if _, err := NewPostPublisher(r.js).PublishPost(context.Background(), starling.Post{ID: "late", Author: "alice", Text: "x", CreatedAt: old}); err != nil {
		t.Fatal(err)
	}

	testenv.Eventually(t, 10*time.Second, func() bool {
		return r.counter(t, "starling_fanout_stale_batches_total", nil) == 3 && len(snd.delivered()) == 2 &&
			r.counter(t, "starling_fanout_stale_posts_total", nil) == 1
	}, "stale batches %v, stale posts %v, delivered %v", r.counter(t, "starling_fanout_stale_batches_total", nil),
		r.counter(t, "starling_fanout_stale_posts_total", nil), snd.delivered())
	got := snd.delivered()
	slices.Sort(got)
	if !slices.Equal(got, []string{"fresh.0 a@x", "undo.0 a@x"}) {
		t.Errorf("delivered %v, want the fresh post and the retraction", got)
	}
	if n := r.counter(t, "starling_fanout_stale_recipients_total", nil); n != 5 {
		t.Errorf("stale recipients counted %v, want 5", n)
	}
	if got := rec.recorded(); !slices.Equal(got, []string{"late"}) || pager.count() != 0 {
		t.Errorf("recorded %v with %d fanouts: a stale post is recorded, not fanned out", got, pager.count())
	}
	logs := r.logs.String()
	if n := strings.Count(logs, "post too old to deliver"); n != 2 || !strings.Contains(logs, "post=old") || !strings.Contains(logs, "post=late") {
		t.Errorf("want one log line per stale post (old, late), got %d:\n%s", n, logs)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return r.streamMsgs(t, DeliveriesStream) == 0 }, "stale batches not acknowledged")
}

func TestStaleLogForgetsInBulk(t *testing.T) {
	var l staleLog
	if !l.first("a") || l.first("a") {
		t.Fatal("a post is logged once")
	}
	for i := range staleLogMemory {
		l.first(strings.Repeat("x", i+1))
	}
	if len(l.seen) > staleLogMemory {
		t.Fatalf("remembers %d ids", len(l.seen))
	}
}
