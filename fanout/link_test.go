package fanout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"starling.dev/starling/internal/testenv"

	"starling.dev/starling"
)

// linked is a StanzaSender and LinkWatcher whose link the test raises and
// drops. With hold, a batch blocks until its link ends (then fails).
type linked struct {
	mu      sync.Mutex
	ready   chan struct{} // closed while the link is up
	gone    chan struct{} // closed when the current link ends
	hold    bool
	started []string
	sent    []string
}

func newLinked() *linked {
	return &linked{ready: make(chan struct{}), gone: make(chan struct{})}
}

func (l *linked) isUp() bool {
	select {
	case <-l.ready:
		return true
	default:
		return false
	}
}

func (l *linked) set(up, hold bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hold = hold
	switch {
	case up && !l.isUp():
		close(l.ready)
	case !up && l.isUp():
		close(l.gone)
		l.ready, l.gone = make(chan struct{}), make(chan struct{})
	}
}

func (l *linked) LinkUp(ctx context.Context) (<-chan struct{}, error) {
	l.mu.Lock()
	ready, gone := l.ready, l.gone
	l.mu.Unlock()
	select {
	case <-ready:
		return gone, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *linked) WaitReady(ctx context.Context) error {
	_, err := l.LinkUp(ctx)
	return err
}

func (l *linked) DeliverBatch(ctx context.Context, b Batch) error {
	l.mu.Lock()
	l.started = append(l.started, pageName(b))
	hold, gone := l.hold, l.gone
	l.mu.Unlock()
	if hold {
		select {
		case <-gone:
			return errors.New("link down")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent = append(l.sent, pageName(b))
	return nil
}

func (l *linked) counts() (started, sent int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.started), len(l.sent)
}

func (l *linked) delivered() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sent)
}

// TestPipelinePullsDeliveriesOnlyWhileLinked: while the sender has no
// link, posts are still fanned out but no delivery batch is pulled (they
// stay pending in the work queue, for a replica with a link); once the
// link is up they flow.
func TestPipelinePullsDeliveriesOnlyWhileLinked(t *testing.T) {
	const batches = 6
	r := newRig(t)
	snd := newLinked() // down
	_, _ = r.start(t, everyone{"bob@example.org"}, nil, snd, nil, ConsumerConfig{})
	for i := range batches {
		r.publishBatch(t, starling.Post{ID: fmt.Sprintf("p%d", i), Author: "alice", Text: "hi", CreatedAt: time.Now()}, i%lanes, "carol@example.org")
	}
	r.publishPost(t, "post1") // the fanout stage runs regardless of the link
	testenv.Eventually(t, 10*time.Second, func() bool { return r.settled(t, PostsStream, FanoutConsumer) },
		"the post was not fanned out while the link was down")
	testenv.Eventually(t, 5*time.Second, func() bool { return r.streamMsgs(t, DeliveriesStream) == batches+1 },
		"want %d batches in the work queue", batches+1)

	// An absence can only be watched for a while: the delivery consumers
	// exist and the post's batch is stored, yet nothing is handed out.
	unpulled := func() (pending uint64) {
		for _, name := range []string{firstSenderConsumer, SenderConsumer} {
			info := r.consumerInfo(t, DeliveriesStream, name)
			if info == nil {
				t.Fatalf("consumer %s not created", name)
			}
			if info.Delivered.Stream != 0 || info.NumAckPending != 0 || info.NumWaiting != 0 {
				t.Fatalf("consumer %s pulls without a link: delivered %d, ack pending %d, pulls waiting %d",
					name, info.Delivered.Stream, info.NumAckPending, info.NumWaiting)
			}
			pending += info.NumPending
		}
		return pending
	}
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if p := unpulled(); p != batches+1 {
			t.Fatalf("%d batches pending, want %d", p, batches+1)
		}
	}
	if started, _ := snd.counts(); started != 0 {
		t.Fatalf("%d batches handled without a link", started)
	}

	snd.set(true, false)
	testenv.Eventually(t, 5*time.Second, func() bool { return r.streamMsgs(t, DeliveriesStream) == 0 },
		"batches not delivered once the link came up; delivered %v", snd.delivered())
	if got := snd.delivered(); len(got) != batches+1 {
		t.Fatalf("delivered %v, want %d batches", got, batches+1)
	}
}

// TestPipelineLinkDownReleasesFetchedDeliveries: when the link goes down
// mid-stream, the consumer stops pulling and hands back at once what it
// fetched but did not start (AckWait is 30 s, so only a release brings them
// back within seconds); nothing is started until the link is back.
func TestPipelineLinkDownReleasesFetchedDeliveries(t *testing.T) {
	const batches = 10
	r := newRig(t)
	snd := newLinked()
	snd.set(true, true) // up; every batch hangs until the link ends
	// Two workers pull four at a time: two batches in handlers, more
	// fetched behind them.
	_, _ = r.start(t, everyone{}, nil, snd, nil, ConsumerConfig{
		FirstWorkers: 2, AckWait: 30 * time.Second, RetryDelay: 50 * time.Millisecond, ShutdownGrace: 5 * time.Second,
	})
	for i := range batches {
		r.publishBatch(t, starling.Post{ID: fmt.Sprintf("p%d", i), Author: "alice", Text: "hi", CreatedAt: time.Now()}, 0, "bob@example.org")
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		info := r.consumerInfo(t, DeliveriesStream, firstSenderConsumer)
		started, _ := snd.counts()
		return started == 2 && info != nil && info.NumAckPending >= 4
	}, "want two batches in their handlers and more fetched behind them")

	snd.set(false, false)
	// The consumer stops pulling: no pull request waits and nothing more
	// is fetched. (A released message still counts as ack pending until
	// it is handed out again, so consumer info cannot tell it from one
	// held; the delivery times below can.)
	testenv.Eventually(t, 5*time.Second, func() bool {
		info := r.consumerInfo(t, DeliveriesStream, firstSenderConsumer)
		return info.NumWaiting == 0 && uint64(info.NumAckPending)+info.NumPending == batches
	}, "the consumer still pulls without a link")
	if started, _ := snd.counts(); started != 2 {
		t.Fatalf("%d batches started after the link went down, want only the 2 in flight before", started-2)
	}

	begin := time.Now()
	snd.set(true, false)
	testenv.Eventually(t, 5*time.Second, func() bool { return r.streamMsgs(t, DeliveriesStream) == 0 },
		"the fetched batches did not come back at once once the link was up (AckWait is 30 s); delivered %v", snd.delivered())
	t.Logf("every batch delivered %s after the link came back", time.Since(begin).Round(time.Millisecond))
	got := snd.delivered()
	slices.Sort(got)
	if len(slices.Compact(got)) != batches {
		t.Fatalf("delivered %v, want each of the %d batches", snd.delivered(), batches)
	}
}
