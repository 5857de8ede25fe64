package xmpp

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"starling.dev/starling/fanout"
	"starling.dev/starling/internal/testenv"
)

// replicas is an in-memory Relay between components, as NATS is between
// gateways: a forwarded id reaches every component, the sender included.
type replicas struct {
	mu        sync.Mutex
	comps     []*Component
	forwarded atomic.Int64
	settled   atomic.Int64
}

func (r *replicas) Forward(id string) {
	r.forwarded.Add(1)
	r.mu.Lock()
	comps := append([]*Component(nil), r.comps...)
	r.mu.Unlock()
	for _, c := range comps {
		if c.Settle(id) {
			r.settled.Add(1)
		}
	}
}

func (r *replicas) add(c *Component) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.comps = append(r.comps, c)
}

// crossAnswers is an endpoint that answers every ping on another
// connection than the one it came on, when there is one, as ejabberd may
// when a component domain has several connections.
func crossAnswers(t *testing.T) *endpoint {
	var ep *endpoint
	ep = startEndpoint(t, testDomain, testSecret, func(c *endpointConn, ping endpointStanza) {
		for _, other := range ep.connections() {
			if other != c {
				other.answer(ping)
				return
			}
		}
		c.answer(ping)
	})
	return ep
}

// TestPingAnswersOnAnotherReplica: with two gateways on one component
// domain, the answer to one's ping arrives on the other's connection; the
// other forwards it and the first settles its batch, every recipient
// delivered once. Without the relay the same batch times out.
func TestPingAnswersOnAnotherReplica(t *testing.T) {
	ep := crossAnswers(t)
	r := &replicas{}
	a := startComponent(t, ep, nil, WithRelay(r))
	r.add(a)
	b := startComponent(t, ep, nil, WithRelay(r))
	r.add(b)
	testenv.Eventually(t, 5*time.Second, func() bool { return len(ep.connections()) == 2 }, "two connections")

	batch := testBatch(t, 1, fanout.BatchSize)
	for _, c := range []*Component{a, b} {
		if err := result(t, deliverAsync(t, c, batch), 10*time.Second); err != nil {
			t.Fatalf("DeliverBatch with answers on the other connection: %v", err)
		}
	}
	// Every ping was answered on the other connection, so answers were
	// forwarded; each settles at most one ping (a late one may find its
	// ping gone).
	if r.forwarded.Load() == 0 || r.settled.Load() == 0 || r.settled.Load() > r.forwarded.Load() {
		t.Fatalf("%d answers forwarded, %d settled a ping: want some of each, and no more settled than forwarded", r.forwarded.Load(), r.settled.Load())
	}
	for _, conn := range ep.connections() {
		wantEveryRecipientOnce(t, conn, batch)
	}

	// The same on two gateways without a relay: the answers are lost.
	ep2 := crossAnswers(t)
	const timeout = 300 * time.Millisecond
	lone := startComponent(t, ep2, func(cfg *Config) { cfg.PingTimeout = timeout })
	startComponent(t, ep2, nil)
	testenv.Eventually(t, 5*time.Second, func() bool { return len(ep2.connections()) == 2 }, "two connections")
	if err := result(t, deliverAsync(t, lone, testBatch(t, 1, 10)), timeout+5*time.Second); err == nil {
		t.Fatal("a batch was confirmed though its ping's answer went to the other gateway, which cannot relay it")
	}
}

// TestSettleIgnoresOthersPings: an id that is not waiting here settles
// nothing, and a ping is settled once.
func TestSettleIgnoresOthersPings(t *testing.T) {
	ep := startEndpoint(t, testDomain, testSecret, func(*endpointConn, endpointStanza) {})
	c := startComponent(t, ep, func(cfg *Config) { cfg.PingTimeout = 5 * time.Second })
	if c.Settle(pingPrefix + "00000000000000000000000000000000") {
		t.Fatal("Settle took an id nobody was waiting for")
	}
	res := deliverAsync(t, c, testBatch(t, 0, 3))
	var id string
	testenv.Eventually(t, 5*time.Second, func() bool {
		c.pings.mu.Lock()
		defer c.pings.mu.Unlock()
		for k := range c.pings.waiting {
			id = k
		}
		return id != ""
	}, "the batch's ping is waiting")
	if !c.Settle(id) {
		t.Fatal("Settle did not take the waiting ping")
	}
	if err := result(t, res, 5*time.Second); err != nil {
		t.Fatalf("DeliverBatch settled by a relayed answer: %v", err)
	}
	if c.Settle(id) {
		t.Fatal("a ping was settled twice")
	}
}

// TestSeveralConnections: a component asked for three connections holds
// three, spreads batches over them, stays up while one is lost (LinkUp's
// channel stays open, the lost one comes back) and reports down only when
// every one is gone.
func TestSeveralConnections(t *testing.T) {
	ep := startEndpoint(t, testDomain, testSecret, nil)
	c := startComponent(t, ep, func(cfg *Config) { cfg.Connections = 3 })
	testenv.Eventually(t, 5*time.Second, func() bool { return c.Links() == 3 }, "three links up")

	for i := range 3 {
		if err := result(t, deliverAsync(t, c, testBatch(t, i, 10)), 10*time.Second); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	for _, conn := range ep.connections() {
		if m, _, _ := conn.counts(); m != 10 {
			t.Errorf("connection %d carried %d messages, want one batch of 10 each", conn.n, m)
		}
	}

	gone, err := c.LinkUp(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ep.connections()[0].drop()
	testenv.Eventually(t, 5*time.Second, func() bool { return len(ep.connections()) == 4 && c.Links() == 3 },
		"the lost connection is replaced")
	select {
	case <-gone:
		t.Fatal("LinkUp's channel closed while two links were still up")
	default:
	}

	ep.stop()
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("LinkUp's channel still open with every link gone")
	}
	if c.Connected() {
		t.Fatal("Connected with every link gone")
	}
}

// TestLostAnswerFreesTheWindow: an answer lost on a live connection (one a
// balancing server handed to a replica that just died) does not hold its
// chunk's room in the pacer's window for ever. Big paced batches fill the
// window with chunks whose pings go unanswered; after PingTimeout those
// pings fail, the room comes back, the batches fail (to be sent again), and
// a batch written after them is delivered.
func TestLostAnswerFreesTheWindow(t *testing.T) {
	const timeout = 300 * time.Millisecond
	var lose atomic.Bool
	lose.Store(true)
	ep := startEndpoint(t, testDomain, testSecret, func(c *endpointConn, ping endpointStanza) {
		if !lose.Load() {
			c.answer(ping)
		}
	})
	c := startComponent(t, ep, func(cfg *Config) { cfg.PingTimeout = timeout })
	var stuck []<-chan error
	for i := range 4 {
		stuck = append(stuck, deliverAsync(t, c, testBatch(t, i+1, fanout.BatchSize)))
	}
	for i, res := range stuck {
		if err := result(t, res, 10*timeout+5*time.Second); err == nil {
			t.Fatalf("batch %d was confirmed though its pings were never answered", i)
		}
	}
	lose.Store(false)
	if err := result(t, deliverAsync(t, c, testBatch(t, 9, fanout.BatchSize)), 5*time.Second); err != nil {
		t.Fatalf("a batch after the lost answers: %v", err)
	}
}

// TestErrorAnswerDoesNotConfirm: a server going down answers the stanzas it
// still holds with errors, delivery pings included, and the messages before
// them were bounced, not routed: an error answer fails the chunk, so the
// batch is sent again.
func TestErrorAnswerDoesNotConfirm(t *testing.T) {
	var refuse atomic.Bool
	refuse.Store(true)
	ep := startEndpoint(t, testDomain, testSecret, func(c *endpointConn, ping endpointStanza) {
		if refuse.Load() {
			c.write(`<iq type='error' from='` + ping.To + `' to='` + ping.From + `' id='` + ping.ID + `'><ping xmlns='urn:xmpp:ping'/><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)
			return
		}
		c.answer(ping)
	})
	c := startComponent(t, ep, nil)
	if err := result(t, deliverAsync(t, c, testBatch(t, 0, 3)), 5*time.Second); err == nil {
		t.Fatal("a batch whose ping the server answered with an error was confirmed")
	}
	refuse.Store(false)
	if err := result(t, deliverAsync(t, c, testBatch(t, 0, 3)), 5*time.Second); err != nil {
		t.Fatalf("the same batch, answered: %v", err)
	}
}
