package xmpp

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"starling.dev/starling/internal/testenv"

	"starling.dev/starling"
	"starling.dev/starling/fanout"
)

const (
	testDomain = "microblog.test"
	testSecret = "s3cret"
)

// deliverStore is the store of a component that only delivers: nobody has
// granted it presence, so there is nothing to probe, and the endpoint sends
// nothing that reaches the other methods (a call panics on the nil Store).
type deliverStore struct{ Store }

func (deliverStore) ProbeTargets(context.Context, uint64, int) ([][2]string, uint64, error) {
	return nil, 0, nil
}

// startComponent runs a component against ep until the test ends and waits
// until it is connected. configure, if not nil, adjusts its Config.
func startComponent(t testing.TB, ep *endpoint, configure func(*Config), opts ...Option) *Component {
	t.Helper()
	cfg := Config{
		Domain: testDomain, Addr: ep.addr(), Secret: testSecret,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	}
	if configure != nil {
		configure(&cfg)
	}
	c, err := New(deliverStore{}, nil, slog.New(slog.DiscardHandler), cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, c)
	return c
}

// runUntilCleanup runs c until the test ends and waits until it is
// connected.
func runUntilCleanup(t testing.TB, c *Component) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitReady(t, c)
}

func waitReady(t testing.TB, c *Component) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

// testBatch is page of a post to n followers, decoded from its line format
// as the send stage receives it.
func testBatch(t testing.TB, page, n int) fanout.Batch {
	t.Helper()
	b := fanout.Batch{
		Post: starling.Post{ID: "01JTEST", Author: "alice", Text: "hello <world> & all", CreatedAt: time.Now()},
		Page: page,
		To:   make([]string, n),
	}
	for i := range b.To {
		b.To[i] = fmt.Sprintf("follower%d@example.org", i)
	}
	msg, err := b.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := fanout.DecodeBatch(msg)
	if err != nil {
		t.Fatal(err)
	}
	return decoded
}

// deliverAsync runs DeliverBatch on a goroutine the test waits for.
func deliverAsync(t testing.TB, c *Component, b fanout.Batch) <-chan error {
	t.Helper()
	res := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		res <- c.DeliverBatch(context.Background(), b)
	}()
	t.Cleanup(func() { <-done })
	return res
}

// result waits for DeliverBatch's result.
func result(t testing.TB, res <-chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-res:
		return err
	case <-time.After(within):
		t.Fatalf("DeliverBatch has not returned after %s", within)
		return nil
	}
}

// wantEveryRecipientOnce checks that conn received exactly one message for
// each of b's recipients, and nothing else.
func wantEveryRecipientOnce(t testing.TB, conn *endpointConn, b fanout.Batch) {
	t.Helper()
	got := conn.recipients()
	_ = b.Recipients(func(to []byte) error {
		if n := got[string(to)]; n != 1 {
			t.Errorf("%s received %d messages, want 1", to, n)
		}
		delete(got, string(to))
		return nil
	})
	if len(got) > 0 {
		t.Errorf("messages to strangers: %v", got)
	}
}

// TestDeliverBatchAcksAfterEveryChunk: a batch written as several chunks is
// acknowledged only once the server has answered the ping behind the last
// chunk, and every recipient gets exactly one message.
func TestDeliverBatchAcksAfterEveryChunk(t *testing.T) {
	const followers = fanout.BatchSize
	withheld := make(chan endpointStanza, 1)
	ep := startEndpoint(t, testDomain, testSecret, func(c *endpointConn, ping endpointStanza) {
		// The ping behind the last chunk is held back; the others are
		// answered at once.
		if messages, _, _ := c.counts(); messages == followers {
			withheld <- ping
			return
		}
		c.answer(ping)
	})
	c := startComponent(t, ep, nil)
	b := testBatch(t, 1, followers) // a later page: paced, in chunks

	res := deliverAsync(t, c, b)
	var last endpointStanza
	select {
	case last = <-withheld:
	case err := <-res:
		t.Fatalf("DeliverBatch returned %v before the last chunk was written", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the last chunk's ping never arrived")
	}
	select {
	case err := <-res:
		t.Fatalf("DeliverBatch returned %v while the last chunk's ping was unanswered", err)
	case <-time.After(50 * time.Millisecond):
	}
	conn := ep.connections()[0]
	conn.answer(last)
	if err := result(t, res, 5*time.Second); err != nil {
		t.Fatalf("DeliverBatch: %v", err)
	}

	messages, pings, answered := conn.counts()
	if pings < 2 || answered != pings {
		t.Fatalf("%d pings, %d answered; want several chunks, each answered", pings, answered)
	}
	if messages != followers {
		t.Fatalf("%d messages, want %d", messages, followers)
	}
	wantEveryRecipientOnce(t, conn, b)
}

// TestDeliverBatchPingTimeout: a server that never answers fails the batch
// after PingTimeout, and the pacer's window is given back.
func TestDeliverBatchPingTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ep := startEndpoint(t, testDomain, testSecret, func(*endpointConn, endpointStanza) {})
	c := startComponent(t, ep, func(cfg *Config) { cfg.PingTimeout = timeout })

	start := time.Now()
	err := result(t, deliverAsync(t, c, testBatch(t, 1, 60)), timeout+5*time.Second)
	if err == nil {
		t.Fatal("DeliverBatch acknowledged a batch the server never confirmed")
	}
	if elapsed := time.Since(start); elapsed < timeout {
		t.Fatalf("DeliverBatch gave up after %s, before PingTimeout %s: %v", elapsed, timeout, err)
	}
	if _, pings, _ := ep.connections()[0].counts(); pings < 2 {
		t.Fatalf("%d pings; want a batch of several chunks", pings)
	}
	c.pacer.mu.Lock()
	inflight := c.pacer.inflight
	c.pacer.mu.Unlock()
	if inflight != 0 {
		t.Fatalf("%d stanzas still hold the pacer's window", inflight)
	}
	c.pings.mu.Lock()
	waiting := len(c.pings.waiting)
	c.pings.mu.Unlock()
	if waiting != 0 {
		t.Fatalf("%d pings still waiting", waiting)
	}
}

// TestDeliverBatchWriteFailure: a connection that breaks in the middle of
// a batch fails it at once (not after PingTimeout), and never acknowledges
// it.
func TestDeliverBatchWriteFailure(t *testing.T) {
	ep := startEndpoint(t, testDomain, testSecret, func(c *endpointConn, _ endpointStanza) {
		c.drop() // at the first chunk's ping
	})
	c := startComponent(t, ep, func(cfg *Config) { cfg.PingTimeout = time.Minute })

	err := result(t, deliverAsync(t, c, testBatch(t, 1, fanout.BatchSize)), 10*time.Second)
	if err == nil {
		t.Fatal("DeliverBatch acknowledged a batch whose connection broke")
	}
	if messages, _, _ := ep.connections()[0].counts(); messages >= fanout.BatchSize {
		t.Fatalf("the endpoint read all %d messages: the connection broke after the batch, not during it", messages)
	}
}

// TestDeliverBatchRetriedAfterReconnect: after the connection drops in the
// middle of a batch, Run reconnects and the batch, sent again, is
// delivered whole on the new connection.
func TestDeliverBatchRetriedAfterReconnect(t *testing.T) {
	ep := startEndpoint(t, testDomain, testSecret, func(c *endpointConn, ping endpointStanza) {
		if c.n == 1 {
			c.drop()
			return
		}
		c.answer(ping)
	})
	c := startComponent(t, ep, nil)
	b := testBatch(t, 1, fanout.BatchSize)

	if err := result(t, deliverAsync(t, c, b), 10*time.Second); err == nil {
		t.Fatal("DeliverBatch acknowledged a batch whose connection broke")
	}
	testenv.Eventually(t, 5*time.Second, func() bool {
		return len(ep.connections()) >= 2 && c.Connected()
	}, "the component did not reconnect")
	if err := result(t, deliverAsync(t, c, b), 10*time.Second); err != nil {
		t.Fatalf("DeliverBatch after reconnecting: %v", err)
	}
	conns := ep.connections()
	if len(conns) != 2 {
		t.Fatalf("%d connections, want 2", len(conns))
	}
	wantEveryRecipientOnce(t, conns[1], b)
}

// TestDeliverBatchNotConnected: without a connection the batch is refused
// at once, to be retried from JetStream.
func TestDeliverBatchNotConnected(t *testing.T) {
	c, err := New(deliverStore{}, nil, slog.New(slog.DiscardHandler), Config{Domain: testDomain, Addr: "127.0.0.1:1", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DeliverBatch(context.Background(), testBatch(t, 0, 1)); err != errNotConnected {
		t.Fatalf("DeliverBatch without a connection: %v, want %v", err, errNotConnected)
	}
	if c.Connected() {
		t.Fatal("Connected before Run")
	}
}

// TestForgedPingAnswerChangesNothing: a result with a ping's id from anyone
// but the server (here a user of it, answering before the server would)
// confirms nothing; the batch is acknowledged only on the server's answer.
func TestForgedPingAnswerChangesNothing(t *testing.T) {
	const timeout = 300 * time.Millisecond
	var genuine atomic.Bool
	ep := startEndpoint(t, testDomain, testSecret, func(c *endpointConn, ping endpointStanza) {
		c.write(`<iq type='result' from='mallory@` + ping.To + `' to='` + ping.From + `' id='` + ping.ID + `'/>`)
		c.write(`<iq type='result' from='` + ping.To + `/res' to='` + ping.From + `' id='` + ping.ID + `'/>`)
		if genuine.Load() {
			c.answer(ping)
		}
	})
	c := startComponent(t, ep, func(cfg *Config) { cfg.PingTimeout = timeout })
	if err := result(t, deliverAsync(t, c, testBatch(t, 0, 3)), timeout+5*time.Second); err == nil {
		t.Fatal("forged answers confirmed a batch the server never confirmed")
	}
	genuine.Store(true)
	if err := result(t, deliverAsync(t, c, testBatch(t, 0, 3)), 5*time.Second); err != nil {
		t.Fatalf("the server's own answer: %v", err)
	}
}

// TestPingIDsAreUnpredictable: ids carry 128 random bits, so neither a user
// nor another replica can name a ping that is not theirs.
func TestPingIDsAreUnpredictable(t *testing.T) {
	p := newPings()
	seen := map[string]bool{}
	for range 1000 {
		id := p.add(nil, func(error) {})
		if len(id) != len(pingPrefix)+2*pingIDBytes || seen[id] {
			t.Fatalf("ping id %q: wrong length or repeated", id)
		}
		seen[id] = true
	}
}

// TestDeliverBatchTrackedReportsConfirmedPrefix: the confirmed callback
// reports, in increasing order, the recipients before each answered ping,
// never more than the server has answered for, and nothing of the chunks
// whose pings go unanswered.
func TestDeliverBatchTrackedReportsConfirmedPrefix(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer int // pings answered; the later ones are withheld
	}{
		{"every chunk answered", fanout.BatchSize},
		{"two chunks answered", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var answeredAt []int // messages before each answered ping
			ep := startEndpoint(t, testDomain, testSecret, func(c *endpointConn, ping endpointStanza) {
				messages, pings, _ := c.counts()
				if pings > tc.answer {
					return
				}
				mu.Lock()
				answeredAt = append(answeredAt, messages)
				mu.Unlock()
				c.answer(ping)
			})
			c := startComponent(t, ep, nil)
			b := testBatch(t, 1, fanout.BatchSize) // a later page: paced, in chunks

			var reports []int
			confirmed := func(n int) {
				mu.Lock()
				defer mu.Unlock()
				if len(answeredAt) == 0 || n > answeredAt[len(answeredAt)-1] {
					t.Errorf("reported %d confirmed; the server had answered for %v", n, answeredAt)
				}
				reports = append(reports, n)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			err := c.DeliverBatchTracked(ctx, b, confirmed)
			if tc.answer >= fanout.BatchSize && err != nil {
				t.Fatalf("DeliverBatchTracked: %v", err)
			}
			if tc.answer < fanout.BatchSize && err == nil {
				t.Fatal("DeliverBatchTracked acknowledged a batch whose pings went unanswered")
			}

			mu.Lock()
			defer mu.Unlock()
			if len(answeredAt) < 2 || !slices.Equal(reports, answeredAt) {
				t.Fatalf("reports %v, want the recipients before each answered ping %v", reports, answeredAt)
			}
			if last := reports[len(reports)-1]; tc.answer >= fanout.BatchSize && last != b.Len() {
				t.Fatalf("last report %d, want the whole batch (%d)", last, b.Len())
			}
		})
	}
}
