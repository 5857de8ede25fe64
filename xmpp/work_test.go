package xmpp

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"starling.dev/starling/internal/testenv"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"starling.dev/starling"
)

// slowStore is a store whose author lookups wait until open is closed (or
// their context ends), as a paused Redis would: each waiting call is
// announced on entered.
type slowStore struct {
	*fakeGraph
	mu      sync.Mutex // fakeGraph is not safe for concurrent use
	entered chan struct{}
	open    chan struct{}
}

func newSlowStore() *slowStore {
	return &slowStore{fakeGraph: newFakeGraph(), entered: make(chan struct{}, 1), open: make(chan struct{})}
}

func (s *slowStore) Profile(ctx context.Context, user string) (starling.Profile, error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	select {
	case <-s.open:
	case <-ctx.Done():
		return starling.Profile{}, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fakeGraph.Profile(ctx, user)
}

func (s *slowStore) RecentPosts(ctx context.Context, user string, n int) ([]starling.Post, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fakeGraph.RecentPosts(ctx, user, n)
}

// runComponent runs a component with store against ep until the test ends
// (or stop is called) and waits until it is connected.
func runComponent(t testing.TB, ep *endpoint, store Store, m *Metrics) (c *Component, stop func()) {
	t.Helper()
	c, err := New(store, m, slog.New(slog.DiscardHandler), Config{
		Domain: testDomain, Addr: ep.addr(), Secret: testSecret,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		CommandRate: 1000, CommandBurst: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return within 5s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	waitReady(t, c)
	return c, stop
}

// command is a chat message the server relays from a follower's resource to
// the service.
func command(from, body string) string {
	return `<message type="chat" from="` + from + `" to="` + testDomain + `"><body>` + body + `</body></message>`
}

// TestHandlersNeverBlockDelivery: while the store hangs, a command's work
// waits on its worker and the reader goes on, so a batch is delivered and
// confirmed at once; when the sender's queue is full, commands are refused
// with an immediate reply; once the store answers, every queued command
// gets its one reply.
func TestHandlersNeverBlockDelivery(t *testing.T) {
	ep := startEndpoint(t, testDomain, testSecret, nil)
	store := newSlowStore()
	m := NewMetrics(prometheus.NewRegistry())
	c, _ := runComponent(t, ep, store, m)
	conn := ep.connections()[0]
	bob := func(i int) string { return fmt.Sprintf("bob@example.org/%d", i) }

	conn.write(command(bob(0), "whois alice"))
	select {
	case <-store.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the command never reached the store")
	}

	// The store hangs for commandTimeout (3 s) at most; delivery does not
	// wait for it.
	start := time.Now()
	b := testBatch(t, 1, 200)
	if err := result(t, deliverAsync(t, c, b), 5*time.Second); err != nil {
		t.Fatalf("DeliverBatch: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("a batch took %s while a command's store call hung", took)
	}

	// The worker is busy with bob(0); workQueue more wait, the rest are
	// refused at once.
	const refused = 3
	sent := 1 + workQueue + refused
	for i := 1; i < sent; i++ {
		conn.write(command(bob(i), "whois alice"))
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return busyCount(t, m) == refused }, "the overflow was not refused")
	testenv.Eventually(t, 5*time.Second, func() bool {
		got := conn.recipients()
		return got[bob(sent-1)] == 1 && got[bob(sent-2)] == 1 && got[bob(sent-3)] == 1
	}, "the refused commands were not answered while the store hung")
	if got := conn.recipients(); got[bob(0)]+got[bob(1)] != 0 {
		t.Fatalf("commands answered while the store hung: %v", got)
	}

	close(store.open)
	testenv.Eventually(t, 5*time.Second, func() bool {
		got := conn.recipients()
		for i := range sent {
			if got[bob(i)] == 0 {
				return false
			}
		}
		return true
	}, "queued commands were not answered once the store came back")
	for i, n := range conn.recipients() {
		if n != 1 && i[:3] == "bob" {
			t.Errorf("%s got %d replies, want 1", i, n)
		}
	}
}

// TestRunStopsWorkers: a job stuck in the store does not hold up the end of
// Run: its context ends with Run's.
func TestRunStopsWorkers(t *testing.T) {
	ep := startEndpoint(t, testDomain, testSecret, nil)
	store := newSlowStore()
	_, stop := runComponent(t, ep, store, nil)
	ep.connections()[0].write(command("bob@example.org/r", "whois alice"))
	select {
	case <-store.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the command never reached the store")
	}
	stop() // fails the test if Run does not return
}

// TestUnusualSenderServed: an address the server accepted but the JID
// library rejects (☃ is no PRECIS identifier) is still answered, at the
// address the server wrote.
func TestUnusualSenderServed(t *testing.T) {
	ep := startEndpoint(t, testDomain, testSecret, nil)
	store := newSlowStore()
	close(store.open)
	runComponent(t, ep, store, nil)
	conn := ep.connections()[0]
	const snowman = "☃@example.org/r"
	conn.write(command(snowman, "follow alice"))
	testenv.Eventually(t, 5*time.Second, func() bool { return conn.recipients()[snowman] == 1 }, "the ☃ follower got no reply")
	store.mu.Lock()
	defer store.mu.Unlock()
	if !store.follows[[2]string{"alice", "☃@example.org"}] {
		t.Fatalf("☃ does not follow alice: %v", store.follows)
	}
}

func TestServerJID(t *testing.T) {
	cases := []struct {
		in, bare string
		ok       bool
	}{
		{"bob@example.org/r", "bob@example.org", true},
		{"Bob@Example.org", "bob@example.org", true},
		{"☃@example.org/r", "☃@example.org", true},
		{"o'brien@example.org/a/b", "o'brien@example.org", true},
		{"example.org", "example.org", true},
		{"", "", false},
		{"bob@/r", "", false},
	}
	for _, c := range cases {
		j, ok := serverJID(c.in)
		if ok != c.ok || ok && j.Bare().String() != c.bare {
			t.Errorf("serverJID(%q) = %q, %v; want %q, %v", c.in, j.Bare(), ok, c.bare, c.ok)
		}
	}
}

// busyCount reads the count of stanzas refused as busy.
func busyCount(t testing.TB, m *Metrics) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.busy.Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetCounter().GetValue()
}
