package fanout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"starling.dev/starling/internal/testenv"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"starling.dev/starling"
)

// These tests run the Pipeline against a real embedded JetStream; only our
// own interfaces (FollowerPager, BatchSink, StanzaSender) are faked.

// startJetStream runs an in-process nats-server with JetStream and returns
// a client on it, with the streams made.
func startJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(testenv.StartNATS(t).Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := EnsureStreams(context.Background(), js, StreamLimits{}); err != nil {
		t.Fatal(err)
	}
	return js
}

// logBuffer collects the pipeline's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// sender records deliveries; fail decides whether a call fails.
type sender struct {
	mu    sync.Mutex
	calls []time.Time
	got   []string // "<msg id> <jid>" of each delivered recipient
	fail  func(call int) error
	hang  bool // block until ctx ends, like a server that never answers
}

func (s *sender) WaitReady(context.Context) error { return nil }

func (s *sender) DeliverBatch(ctx context.Context, b Batch) error {
	s.mu.Lock()
	s.calls = append(s.calls, time.Now())
	call := len(s.calls)
	s.mu.Unlock()
	if s.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	if s.fail != nil {
		if err := s.fail(call); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return b.Recipients(func(j []byte) error { s.got = append(s.got, pageName(b)+" "+string(j)); return nil })
}

func (s *sender) callTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func (s *sender) delivered() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// pageName names a batch by its post and page: "<post id>.<page>".
func pageName(b Batch) string { return b.Post.ID + "." + strconv.Itoa(b.Page) }

// everyone has the same followers, whoever the author.
type everyone []string

func (e everyone) WalkFollowers(_ context.Context, _, after string, _ int, _ bool, page func([]string, string) error) error {
	if after != "" || len(e) == 0 {
		return nil
	}
	return page(e, e[len(e)-1])
}

type rig struct {
	js      jetstream.JetStream
	reg     *prometheus.Registry
	metrics *Metrics // of the first pipeline started
	logs    *logBuffer
}

// runPipeline starts a Pipeline over a fresh JetStream; sink nil means the
// real JetStreamSink. It stops when the test ends.
func runPipeline(t *testing.T, pager FollowerPager, sink BatchSink, snd StanzaSender, cfg ConsumerConfig) *rig {
	t.Helper()
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = 100 * time.Millisecond // tests that leave a handler stuck end sooner
	}
	r := newRig(t)
	_, _ = r.start(t, pager, sink, snd, nil, cfg)
	return r
}

func newRig(t *testing.T) *rig {
	return &rig{js: startJetStream(t), reg: prometheus.NewRegistry(), logs: &logBuffer{}}
}

// start runs a Pipeline on the rig's JetStream (metrics registered once per
// rig). It returns Run's context and a function that cancels it and returns
// Run's result once it has stopped; the test's end stops it too.
func (r *rig) start(t *testing.T, pager FollowerPager, sink BatchSink, snd StanzaSender, rec PostRecorder, cfg ConsumerConfig) (running context.Context, stop func() error) {
	t.Helper()
	if sink == nil {
		sink = NewJetStreamSink(r.js)
	}
	var m *Metrics
	if r.metrics == nil {
		r.metrics = NewMetrics(r.reg)
		m = r.metrics
	}
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := NewPipeline(r.js, NewFanout(pager, sink, m), NewSend(snd, time.Second, m), rec, log, m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(10 * time.Second):
				runErr = errors.New("pipeline did not stop within 10 s")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("pipeline: %v", err)
		}
	})
	return ctx, stop
}

func (r *rig) publishPost(t *testing.T, id string) {
	t.Helper()
	if _, err := NewPostPublisher(r.js).PublishPost(context.Background(), starling.Post{ID: id, Author: "alice", Text: "hi"}); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) publishRaw(t *testing.T, subject string, data []byte) {
	t.Helper()
	if _, err := r.js.Publish(context.Background(), subject, data); err != nil {
		t.Fatal(err)
	}
}

// deadLetters returns the dead-letter stream's messages.
func (r *rig) deadLetters(t *testing.T) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := r.js.Stream(ctx, deadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func (r *rig) consumerInfo(t *testing.T, stream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := r.js.Consumer(context.Background(), stream, name)
	if err != nil {
		return nil // not created yet
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// settled reports whether the consumer has acknowledged (or terminated)
// everything it was given and nothing waits.
func (r *rig) settled(t *testing.T, stream, name string) bool {
	info := r.consumerInfo(t, stream, name)
	return info != nil && info.Delivered.Stream > 0 && info.NumAckPending == 0 && info.NumPending == 0 && info.NumRedelivered == 0
}

func (r *rig) streamMsgs(t *testing.T, stream string) uint64 {
	t.Helper()
	s, err := r.js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// counter sums the samples of a counter whose labels include want.
func (r *rig) counter(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	families, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := want[l.GetName()]; ok && v != l.GetValue() {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func TestPipelineDeadLettersPoison(t *testing.T) {
	snd := &sender{}
	// One worker per stage: the good message queues behind the poison.
	r := runPipeline(t, everyone{"bob@example.org"}, nil, snd, ConsumerConfig{FanoutWorkers: 1, FirstWorkers: 1, SendWorkers: 1})
	r.publishRaw(t, PostSubject("alice"), []byte("not a post"))
	r.publishRaw(t, firstLaneSubject, []byte("B1 x\nnot a batch"))
	r.publishPost(t, "good")

	testenv.Eventually(t, 10*time.Second, func() bool { return len(snd.delivered()) == 1 && len(r.deadLetters(t)) == 2 },
		"want the good post delivered and two dead letters; delivered %v", snd.delivered())
	if got := snd.delivered(); got[0] != "good.0 bob@example.org" {
		t.Fatalf("delivered %v", got)
	}
	want := map[string]struct{ subject, data string }{
		PostsStream:      {PostSubject("alice"), "not a post"},
		DeliveriesStream: {firstLaneSubject, "B1 x\nnot a batch"},
	}
	for _, letter := range r.deadLetters(t) {
		h := letter.Header
		stream := h.Get(headerStream)
		w, ok := want[stream]
		if !ok || letter.Subject != deadLetterSubjectPrefix+stream || h.Get(headerSubject) != w.subject ||
			string(letter.Data) != w.data || h.Get(headerReason) != reasonUndecodable ||
			h.Get(headerDeliveries) != "1" || h.Get(headerSequence) != "1" || !strings.Contains(h.Get(headerError), "undecodable") {
			t.Errorf("dead letter %s %q headers %v", letter.Subject, letter.Data, h)
		}
		delete(want, stream)
	}
	for stream, n := range map[string]float64{PostsStream: 1, DeliveriesStream: 1} {
		if got := r.counter(t, "starling_fanout_dead_letters_total", map[string]string{"stream": stream, "reason": reasonUndecodable}); got != n {
			t.Errorf("dead letters from %s counted %v, want %v", stream, got, n)
		}
	}
	if got := r.counter(t, "starling_fanout_undecodable_total", nil); got != 2 {
		t.Errorf("undecodable counted %v", got)
	}
	if logs := r.logs.String(); strings.Count(logs, "message dead-lettered") != 2 {
		t.Errorf("want two dead-letter log lines:\n%s", logs)
	}
	// Nothing is left to come back: the poison was terminated, not naked.
	testenv.Eventually(t, 5*time.Second, func() bool {
		return r.settled(t, PostsStream, FanoutConsumer) && r.settled(t, DeliveriesStream, firstSenderConsumer)
	}, "consumers still hold messages")
	if r.streamMsgs(t, DeliveriesStream) != 0 {
		t.Error("the work queue still holds a batch")
	}
}

func TestPipelineRetriesAfterGrowingDelay(t *testing.T) {
	const delay = 200 * time.Millisecond
	snd := &sender{fail: func(call int) error {
		if call <= 3 {
			return errors.New("component: stream closed")
		}
		return nil
	}}
	r := runPipeline(t, everyone{"bob@example.org"}, nil, snd, ConsumerConfig{RetryDelay: delay, MaxRetryDelay: time.Minute})
	r.publishPost(t, "p1")
	testenv.Eventually(t, 15*time.Second, func() bool { return len(snd.delivered()) == 1 }, "batch never delivered")
	testenv.Eventually(t, 5*time.Second, func() bool {
		return r.settled(t, DeliveriesStream, firstSenderConsumer) || r.streamMsgs(t, DeliveriesStream) == 0
	},
		"batch not acknowledged after the failure cleared")
	if n := r.streamMsgs(t, DeliveriesStream); n != 0 {
		t.Fatalf("%d batches left in the work queue; the delivered one was not acked", n)
	}
	calls := snd.callTimes()
	if len(calls) != 4 {
		t.Fatalf("%d attempts, want 3 failures and 1 success", len(calls))
	}
	// A Nak with delay: each attempt comes back after its delay (doubling),
	// not at once, and not only after AckWait (30 s).
	for i, want := range []time.Duration{delay, 2 * delay, 4 * delay} {
		gap := calls[i+1].Sub(calls[i])
		if gap < want-20*time.Millisecond || gap > want+5*time.Second {
			t.Errorf("attempt %d came %s after the failure, want about %s", i+2, gap, want)
		}
	}
	if got := r.counter(t, "starling_fanout_send_errors_total", nil); got != 3 {
		t.Errorf("send errors counted %v", got)
	}
	if got := r.counter(t, "starling_fanout_dead_letters_total", nil); got != 0 {
		t.Errorf("dead letters counted %v", got)
	}
}

func TestPipelineDeadLettersExhaustedBatch(t *testing.T) {
	snd := &sender{fail: func(int) error { return errors.New("item-not-found") }}
	r := runPipeline(t, everyone{"bob@example.org"}, nil, snd, ConsumerConfig{RetryDelay: 10 * time.Millisecond, BatchMaxDeliver: 3})
	r.publishPost(t, "p1")
	testenv.Eventually(t, 10*time.Second, func() bool { return len(r.deadLetters(t)) == 1 }, "batch never dead-lettered")
	h := r.deadLetters(t)[0].Header
	if h.Get(headerStream) != DeliveriesStream || h.Get(headerReason) != reasonExhausted ||
		h.Get(headerDeliveries) != "3" || !strings.Contains(h.Get(headerError), "item-not-found") {
		t.Fatalf("dead letter headers %v", h)
	}
	if n := len(snd.callTimes()); n != 3 {
		t.Fatalf("%d attempts, want BatchMaxDeliver = 3", n)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return r.streamMsgs(t, DeliveriesStream) == 0 }, "batch still queued")
	if got := r.counter(t, "starling_fanout_dead_letters_total", map[string]string{"reason": reasonExhausted}); got != 1 {
		t.Errorf("dead letters counted %v", got)
	}
}

func TestPipelineDeadLettersLastAttemptThatNeverAnswers(t *testing.T) {
	// The only attempt hangs past MaxHold and AckWait, as if the process
	// had died: the server's one extra delivery records it instead of
	// dropping it.
	snd := &sender{hang: true}
	r := runPipeline(t, everyone{"bob@example.org"}, nil, snd,
		ConsumerConfig{AckWait: 300 * time.Millisecond, MaxHold: 300 * time.Millisecond, BatchMaxDeliver: 1, FirstWorkers: 2})
	r.publishPost(t, "p1")
	testenv.Eventually(t, 10*time.Second, func() bool { return len(r.deadLetters(t)) == 1 }, "batch never dead-lettered")
	h := r.deadLetters(t)[0].Header
	if h.Get(headerReason) != reasonExhausted || h.Get(headerDeliveries) != "2" || !strings.Contains(h.Get(headerError), "AckWait") {
		t.Fatalf("dead letter headers %v", h)
	}
	if n := len(snd.callTimes()); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
}

// gateSink is a BatchSink whose batches become durable only when the test
// says so, or fail.
type gateSink struct {
	mu      sync.Mutex
	batches []string
	open    chan struct{}
	fail    func(n int) error // for the n'th batch (from 1)
}

type gatePending struct {
	open <-chan struct{}
	err  error
}

func (g gatePending) Wait(ctx context.Context) error {
	select {
	case <-g.open:
		return g.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gateSink) PublishBatch(_ context.Context, b Batch) (Pending, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.batches = append(g.batches, b.MsgID())
	var err error
	if g.fail != nil {
		err = g.fail(len(g.batches))
	}
	return gatePending{g.open, err}, nil
}

func (g *gateSink) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.batches)
}

// pages serves fixed pages of followers.
type pages [][]string

func (p pages) WalkFollowers(_ context.Context, _, after string, _ int, _ bool, page func([]string, string) error) error {
	skipping := after != ""
	for _, pg := range p {
		last := pg[len(pg)-1]
		if skipping {
			skipping = last != after
			continue
		}
		if err := page(pg, last); err != nil {
			return err
		}
	}
	return nil
}

func TestPipelineAcksPostOnlyWhenEveryBatchIsStored(t *testing.T) {
	sink := &gateSink{open: make(chan struct{})}
	r := runPipeline(t, pages{{"a@x"}, {"b@x"}, {"c@x"}}, sink, &sender{}, ConsumerConfig{})
	r.publishPost(t, "p1")
	// One page is in flight at a time (see Fanout.Fan): the first batch
	// is published and not durable yet, so the post is held.
	testenv.Eventually(t, 10*time.Second, func() bool { return sink.count() == 1 }, "post not fanned out")
	info := r.consumerInfo(t, PostsStream, FanoutConsumer)
	if info.NumAckPending != 1 || info.AckFloor.Stream != 0 {
		t.Fatalf("post settled before its batches were stored: %d pending, ack floor %d", info.NumAckPending, info.AckFloor.Stream)
	}
	close(sink.open)
	testenv.Eventually(t, 5*time.Second, func() bool { return r.settled(t, PostsStream, FanoutConsumer) }, "post not acked once its batches were stored")
	if n := sink.count(); n != 3 {
		t.Fatalf("%d batches published, want 3", n)
	}
}

func TestPipelineRetriesPostWhoseBatchWasNotStored(t *testing.T) {
	open := make(chan struct{})
	close(open)
	sink := &gateSink{open: open, fail: func(n int) error {
		if n == 2 {
			return errors.New("nats: timeout")
		}
		return nil
	}}
	r := runPipeline(t, pages{{"a@x"}, {"b@x"}}, sink, &sender{}, ConsumerConfig{RetryDelay: 50 * time.Millisecond})
	r.publishPost(t, "p1")
	// The first round's second batch failed: the post comes back and is
	// fanned out again (JetStream drops the duplicate batches by id).
	testenv.Eventually(t, 10*time.Second, func() bool { return sink.count() == 4 }, "post not retried; %d batches", sink.count())
	testenv.Eventually(t, 5*time.Second, func() bool {
		info := r.consumerInfo(t, PostsStream, FanoutConsumer)
		return info.NumAckPending == 0 && info.AckFloor.Stream == 1
	}, "post not acked after the retry")
	if n := sink.count(); n != 4 {
		t.Fatalf("%d batches published, want 2 per attempt", n)
	}
}

func TestRetryDelayGrows(t *testing.T) {
	c := ConsumerConfig{RetryDelay: time.Second, MaxRetryDelay: 5 * time.Second}.withDefaults()
	var got []time.Duration
	for attempt := range uint64(6) {
		got = append(got, c.retryDelay(attempt+1))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("delays %v, want %v", got, want)
	}
	if d := (ConsumerConfig{}).withDefaults().retryDelay(1000); d != defaultMaxRetryDelay {
		t.Fatalf("delay after many attempts = %s", d)
	}
}

// publishBatch stores a batch of post for to, as the fanout stage would.
func (r *rig) publishBatch(t *testing.T, post starling.Post, page int, to ...string) {
	t.Helper()
	data, err := Batch{Post: post, Page: page, To: to}.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := Batch{Post: post, Page: page, To: to}
	if _, err := r.js.Publish(context.Background(), laneSubject(page), data, jetstream.WithMsgID(b.MsgID())); err != nil {
		t.Fatal(err)
	}
}

// held is a StanzaSender whose every batch blocks until release is closed
// (then succeeds) or the handler's context ends (then fails).
type held struct {
	mu      sync.Mutex
	calls   []string
	release <-chan struct{}
}

func (h *held) WaitReady(context.Context) error { return nil }

func (h *held) DeliverBatch(ctx context.Context, b Batch) error {
	h.mu.Lock()
	h.calls = append(h.calls, pageName(b))
	h.mu.Unlock()
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *held) started() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

// TestPipelineShutdownReleasesMessages stops a pipeline while a batch
// handler is stuck and more batches wait in its pull buffer: after the
// grace, the stuck batch and the buffered ones are handed back at once, so
// a second pipeline on the same consumer delivers every one of them within
// a second or two, not after the 30 s AckWait.
func TestPipelineShutdownReleasesMessages(t *testing.T) {
	const batches = 10
	r := newRig(t)
	stuck := &held{release: make(chan struct{})} // never released
	// Two workers pull four at a time: two batches stuck in handlers, one
	// waiting for a worker, the rest in the iterator's buffer.
	_, stop := r.start(t, everyone{}, nil, stuck, nil, ConsumerConfig{FirstWorkers: 2, ShutdownGrace: 300 * time.Millisecond})
	for i := range batches {
		r.publishBatch(t, starling.Post{ID: fmt.Sprintf("p%d", i), Author: "alice", Text: "hi", CreatedAt: time.Now()}, 0, "bob@example.org")
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		info := r.consumerInfo(t, DeliveriesStream, firstSenderConsumer)
		return len(stuck.started()) == 2 && info != nil && info.NumAckPending >= 4
	}, "want two batches stuck in their handlers and more fetched behind them")

	begin := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Since(begin)
	if stopped > 2*time.Second {
		t.Errorf("Run took %s to return with a 300 ms grace", stopped)
	}
	if n := len(stuck.started()); n != 2 {
		t.Fatalf("the stopping pipeline started %d batches, want only the two stuck ones", n)
	}

	snd := &sender{}
	_, _ = r.start(t, everyone{}, nil, snd, nil, ConsumerConfig{FirstWorkers: 1})
	testenv.Eventually(t, 5*time.Second, func() bool { return len(snd.delivered()) >= batches },
		"the released batches did not come back at once (AckWait is 30 s); delivered %v", snd.delivered())
	t.Logf("Run returned %s after cancel; the next pipeline had every batch %s after that", stopped.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond)-stopped.Round(time.Millisecond))
	got := snd.delivered()
	slices.Sort(got)
	if len(slices.Compact(got)) != batches {
		t.Fatalf("delivered %v, want each of the %d batches once", snd.delivered(), batches)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return r.streamMsgs(t, DeliveriesStream) == 0 }, "batches left in the work queue")
}

// TestPipelineShutdownAcksHandlerThatFinishes: a batch whose handler
// finishes within the grace is acknowledged, not handed back.
func TestPipelineShutdownAcksHandlerThatFinishes(t *testing.T) {
	r := newRig(t)
	release := make(chan struct{})
	slow := &held{release: release}
	running, stop := r.start(t, everyone{}, nil, slow, nil, ConsumerConfig{FirstWorkers: 1, ShutdownGrace: 5 * time.Second})
	r.publishBatch(t, starling.Post{ID: "p1", Author: "alice", Text: "hi", CreatedAt: time.Now()}, 0, "bob@example.org")
	testenv.Eventually(t, 10*time.Second, func() bool { return len(slow.started()) == 1 }, "batch never handled")

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	<-running.Done() // shutting down: the handler is still in DeliverBatch
	close(release)
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return once its last handler finished")
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return r.streamMsgs(t, DeliveriesStream) == 0 },
		"the batch finished within the grace was not acknowledged")
	if info := r.consumerInfo(t, DeliveriesStream, firstSenderConsumer); info.NumRedelivered != 0 || info.NumAckPending != 0 {
		t.Fatalf("consumer after shutdown: %d redelivered, %d pending", info.NumRedelivered, info.NumAckPending)
	}
}

// recorder is a PostRecorder that fails its first failures calls.
type recorder struct {
	mu       sync.Mutex
	failures int
	calls    int
	ids      []string
}

func (r *recorder) RecordPost(_ context.Context, p starling.Post) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.calls <= r.failures {
		return errors.New("redis: connection refused")
	}
	r.ids = append(r.ids, p.ID)
	return nil
}

func (r *recorder) recorded() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids)
}

// scans counts the fanouts that reached the follower scan.
type scans struct {
	FollowerPager
	mu sync.Mutex
	n  int
}

func (s *scans) WalkFollowers(ctx context.Context, author, after string, count int, all bool, page func([]string, string) error) error {
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
	return s.FollowerPager.WalkFollowers(ctx, author, after, count, all, page)
}

func (s *scans) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// TestPipelineRecordsPostsItFansOut: every post is recorded before it is
// fanned out, a failed record is retried (and nothing is fanned out
// meanwhile), and a retraction is not recorded as a post.
func TestPipelineRecordsPostsItFansOut(t *testing.T) {
	r := newRig(t)
	rec := &recorder{failures: 1}
	pager := &scans{FollowerPager: everyone{"bob@example.org"}}
	snd := &sender{}
	_, _ = r.start(t, pager, nil, snd, rec, ConsumerConfig{FanoutWorkers: 1, RetryDelay: 50 * time.Millisecond})
	pub := NewPostPublisher(r.js)
	if _, err := pub.PublishPost(context.Background(), starling.Post{ID: "p1", Author: "alice", Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.PublishPost(context.Background(), starling.Post{ID: "r1", Author: "alice", Retracts: "p1"}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return len(snd.delivered()) == 2 }, "delivered %v", snd.delivered())
	if got := rec.recorded(); !slices.Equal(got, []string{"p1"}) {
		t.Errorf("recorded %v, want the post and not its retraction", got)
	}
	if n := pager.count(); n != 2 {
		t.Errorf("%d fanouts, want 2: none while the record failed", n)
	}
	if !strings.Contains(r.logs.String(), "record post p1") {
		t.Errorf("the failed record was not logged:\n%s", r.logs.String())
	}
}

// TestPipelineKeepsSlowHandlersAlive: a send that takes several AckWaits
// (a slow XMPP server) is kept alive with "in progress" and not redelivered
// under its feet; it is acknowledged once, when it is done.
func TestPipelineKeepsSlowHandlersAlive(t *testing.T) {
	const ackWait = 300 * time.Millisecond
	snd := &sender{fail: func(int) error {
		time.Sleep(4 * ackWait) // the slow server itself, not synchronisation
		return nil
	}}
	r := runPipeline(t, everyone{"bob@example.org"}, nil, snd, ConsumerConfig{AckWait: ackWait, FirstWorkers: 2})
	r.publishPost(t, "p1")
	testenv.Eventually(t, 10*time.Second, func() bool {
		snd.mu.Lock()
		defer snd.mu.Unlock()
		return len(snd.got) == 1
	}, "the slow batch was never delivered")
	// Past several more AckWaits nothing else arrives.
	deadline := time.Now().Add(3 * ackWait)
	for time.Now().Before(deadline) {
		if n := len(snd.callTimes()); n != 1 {
			t.Fatalf("%d attempts of a batch that was only slow, want 1", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
