package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"starling.dev/starling/internal/testenv"

	"github.com/prometheus/client_golang/prometheus"
	"starling.dev/starling"
)

// memBatchProgress is a BatchProgress in memory that counts its reads.
type memBatchProgress struct {
	mu    sync.Mutex
	n     map[string]int
	reads int
	sets  []int // every count written, in order
}

func newMemBatchProgress() *memBatchProgress { return &memBatchProgress{n: map[string]int{}} }

func (m *memBatchProgress) Confirmed(_ context.Context, author, id string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	return m.n[author+"/"+id], nil
}

func (m *memBatchProgress) SetConfirmed(_ context.Context, author, id string, n int, _ bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sets = append(m.sets, n)
	m.n[author+"/"+id] = max(m.n[author+"/"+id], n)
	return nil
}

func (m *memBatchProgress) state() (saved map[string]int, reads int, sets []int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.n), m.reads, slices.Clone(m.sets)
}

// confirmingSender is a ConfirmingSender whose attempt is scripted: it
// records the recipients it is given, and returns what attempt returns.
type confirmingSender struct {
	mu      sync.Mutex
	got     [][]string // the recipients of each call
	attempt func(call int, b Batch, confirmed func(int)) error
}

func (s *confirmingSender) WaitReady(context.Context) error { return nil }

func (s *confirmingSender) DeliverBatch(ctx context.Context, b Batch) error {
	return s.DeliverBatchTracked(ctx, b, func(int) {})
}

func (s *confirmingSender) DeliverBatchTracked(_ context.Context, b Batch, confirmed func(int)) error {
	var to []string
	_ = b.Recipients(func(j []byte) error { to = append(to, string(j)); return nil })
	s.mu.Lock()
	s.got = append(s.got, to)
	call := len(s.got)
	s.mu.Unlock()
	return s.attempt(call, b, confirmed)
}

func (s *confirmingSender) calls() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

func followerJIDs(n int) everyone {
	f := make(everyone, n)
	for i := range f {
		f[i] = fmt.Sprintf("f%03d@example.org", i)
	}
	return f
}

// TestRedeliveredBatchSkipsConfirmed: a batch whose send fails after the
// server confirmed part of it is redelivered by JetStream, and the sender
// then gets only the recipients not confirmed. The confirmed count is saved
// while the first attempt is still sending (a gateway killed then would
// leave it behind), and saved whole once the batch is sent, for a
// redelivery after a lost ack.
func TestRedeliveredBatchSkipsConfirmed(t *testing.T) {
	followers := followerJIDs(BatchSize)
	bp := newMemBatchProgress()
	saved := func(n int) func() bool {
		return func() bool {
			s, _, _ := bp.state()
			for _, v := range s {
				if v == n {
					return true
				}
			}
			return false
		}
	}
	snd := &confirmingSender{attempt: func(call int, b Batch, confirmed func(int)) error {
		if call > 1 {
			confirmed(b.Len())
			return nil
		}
		// Two chunks confirmed, each saved before the next; then the
		// connection is lost.
		for _, n := range []int{150, 300} {
			confirmed(n)
			deadline := time.Now().Add(5 * time.Second)
			for !saved(n)() {
				if time.Now().After(deadline) {
					t.Errorf("confirmed count %d not saved while sending", n)
					break
				}
				time.Sleep(5 * time.Millisecond) // polling interval
			}
		}
		return errors.New("connection lost")
	}}
	js := startJetStream(t)
	m := NewMetrics(prometheus.NewRegistry())
	p, err := NewPipeline(js, NewFanout(followers, NewJetStreamSink(js), m),
		NewSend(snd, time.Second, m, WithBatchProgress(bp)), nil, slog.New(slog.DiscardHandler), m,
		ConsumerConfig{RetryDelay: 10 * time.Millisecond, ShutdownGrace: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	if _, err := NewPostPublisher(js).PublishPost(context.Background(), starling.Post{ID: "01JRESUME", Author: "alice", Text: "hi"}); err != nil {
		t.Fatal(err)
	}

	testenv.Eventually(t, 10*time.Second, func() bool { return len(snd.calls()) >= 2 }, "the batch was not redelivered")
	testenv.Eventually(t, 5*time.Second, saved(BatchSize), "the whole batch's count was not saved")
	calls := snd.calls()
	if len(calls) != 2 {
		t.Fatalf("%d attempts, want 2", len(calls))
	}
	if !slices.Equal(calls[0], []string(followers)) {
		t.Fatalf("first attempt got %d recipients, want all %d", len(calls[0]), len(followers))
	}
	if !slices.Equal(calls[1], []string(followers[300:])) {
		t.Fatalf("redelivery got %d recipients (first %q), want the %d after the confirmed 300", len(calls[1]), calls[1][:min(1, len(calls[1]))], len(followers)-300)
	}
	if _, reads, sets := bp.state(); reads != 1 || !slices.Equal(sets, []int{150, 300, BatchSize}) {
		t.Fatalf("%d reads (want 1: the redelivery's), writes %v (want [150 300 %d])", reads, sets, BatchSize)
	}
}

// TestSendFirstDeliveryReadsNothing: a batch's first attempt reads no
// saved count, and a batch sent whole in one chunk writes none.
func TestSendFirstDeliveryReadsNothing(t *testing.T) {
	bp := newMemBatchProgress()
	snd := &confirmingSender{attempt: func(_ int, b Batch, confirmed func(int)) error {
		confirmed(b.Len())
		return nil
	}}
	send := NewSend(snd, time.Second, nil, WithBatchProgress(bp))
	b := decoded(t, Batch{Post: starling.Post{ID: "01JFIRST", Author: "alice", Text: "hi"}, To: followerJIDs(40)})
	if err := send.Deliver(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if saved, reads, sets := bp.state(); reads != 0 || len(sets) != 0 || len(saved) != 0 {
		t.Fatalf("first delivery: %d reads, writes %v, saved %v; want none", reads, sets, saved)
	}
}

// TestRedeliverConfirmedWhole: a batch confirmed whole whose ack was lost
// is acknowledged again without sending anything or writing.
func TestRedeliverConfirmedWhole(t *testing.T) {
	bp := newMemBatchProgress()
	snd := &confirmingSender{attempt: func(int, Batch, func(int)) error { return nil }}
	b := decoded(t, Batch{Post: starling.Post{ID: "01JWHOLE", Author: "alice", Text: "hi"}, To: followerJIDs(40)})
	_ = bp.SetConfirmed(context.Background(), "alice", b.MsgID(), 40, true)
	if err := NewSend(snd, time.Second, nil, WithBatchProgress(bp)).Redeliver(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if calls := snd.calls(); len(calls) != 0 {
		t.Fatalf("sent %d recipients of a batch confirmed whole", len(calls[0]))
	}
	if _, reads, sets := bp.state(); reads != 1 || len(sets) != 1 {
		t.Fatalf("%d reads, writes %v; want the one read and the test's write", reads, sets)
	}
}

// TestBatchSkip: skipping recipients of a decoded batch keeps the rest, in
// order, and allocates nothing.
func TestBatchSkip(t *testing.T) {
	to := followerJIDs(7)
	for _, b := range []Batch{{Post: starling.Post{ID: "01JSKIP", Author: "alice", Text: "hi"}, To: to}, decoded(t, Batch{Post: starling.Post{ID: "01JSKIP", Author: "alice", Text: "hi"}, To: to})} {
		for n := -1; n <= len(to)+1; n++ {
			rest := b.skip(n)
			var got []string
			_ = rest.Recipients(func(j []byte) error { got = append(got, string(j)); return nil })
			want := []string(to[min(max(n, 0), len(to)):])
			if rest.Len() != len(want) || !slices.Equal(got, want) && len(want) > 0 {
				t.Fatalf("skip(%d) of %d: %d recipients %q, want %q", n, len(to), rest.Len(), got, want)
			}
		}
	}
	big := decoded(t, Batch{Post: starling.Post{ID: "01JSKIP", Author: "alice", Text: "hi"}, To: strings.Fields(strings.Repeat("carol@example.org ", BatchSize))})
	if n := testing.AllocsPerRun(100, func() { _ = big.skip(BatchSize / 2) }); n != 0 {
		t.Fatalf("skip: %v allocations, want 0", n)
	}
}

// decoded returns b as the send stage receives it.
func decoded(t *testing.T, b Batch) Batch {
	t.Helper()
	msg, err := b.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeBatch(msg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
