package xmpp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"starling.dev/starling"
	"starling.dev/starling/fanout"
	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/s2s"
)

// s2sStore is the store of a component in s2s mode that only delivers: it
// records the bounces it is told of.
type s2sStore struct {
	Store
	mu      sync.Mutex
	bounced []string
}

func (*s2sStore) ProbeTargets(context.Context, uint64, int) ([][2]string, uint64, error) {
	return nil, 0, nil
}

func (s *s2sStore) Bounced(_ context.Context, jid string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bounced = append(s.bounced, jid)
	return int64(len(s.bounced)), nil
}

func (s *s2sStore) bounces() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(slices.Values(s.bounced))
}

// remotePeer is a remote XMPP server for the component under test: an
// s2s.Server that answers pings and counts the messages it is sent.
type remotePeer struct {
	srv *s2s.Server
	mu  sync.Mutex
	got []string // recipients of the messages, in arrival order
}

func (p *remotePeer) HandleStanza(r xml.TokenReader, start *xml.StartElement) {
	var st struct {
		Type string    `xml:"type,attr"`
		From string    `xml:"from,attr"`
		To   string    `xml:"to,attr"`
		ID   string    `xml:"id,attr"`
		Ping *struct{} `xml:"urn:xmpp:ping ping"`
	}
	if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), r)).Decode(&st); err != nil {
		return
	}
	switch {
	case start.Name.Local == "iq" && st.Type == "get" && st.Ping != nil:
		p.srv.Send(domainOf(st.From), []byte(`<iq type="result" from="`+st.To+`" to="`+st.From+`" id="`+st.ID+`"/>`))
	case start.Name.Local == "message":
		p.mu.Lock()
		p.got = append(p.got, st.To)
		p.mu.Unlock()
	}
}

func (p *remotePeer) OutboundClosed(*s2s.Outbound) {}

func (p *remotePeer) received() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

// serveS2S serves srv with h until the test ends.
func serveS2S(t *testing.T, srv *s2s.Server, h s2s.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	<-srv.Listening()
}

// startS2SComponent runs a component in s2s mode for microblog.test, with
// a remote server b.test that answers its pings and a domain dead.test
// nothing listens for.
func startS2SComponent(t *testing.T) (*Component, *s2sStore, *remotePeer) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	pg, pb, dead := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	fed, err := s2s.New(s2s.Config{
		Domain: testDomain, Secret: "gw", Addr: testenv.Addr(pg), Insecure: true, MinBackoff: time.Minute,
		Hosts: map[string]string{"b.test": testenv.Addr(pb), "dead.test": testenv.Addr(dead)},
	}, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	peerSrv, err := s2s.New(s2s.Config{Domain: "b.test", Secret: "b", Addr: testenv.Addr(pb), Insecure: true, Hosts: map[string]string{testDomain: testenv.Addr(pg)}}, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	peer := &remotePeer{srv: peerSrv}
	serveS2S(t, peerSrv, peer)
	store := &s2sStore{}
	c, err := New(store, nil, log, Config{Domain: testDomain}, WithFederation(fed))
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, c)
	return c, store, peer
}

// TestDeliverS2S delivers one batch to two domains: b.test confirms its
// chunks with its pings' answers; dead.test cannot be reached, so its
// recipients count as bounces. The confirmed prefix covers the batch.
func TestDeliverS2S(t *testing.T) {
	c, store, peer := startS2SComponent(t)
	to := []string{"a@b.test", "x@dead.test", "c@b.test", "y@dead.test", "e@b.test"}
	post := starling.Post{ID: "01JS2S0000000000000000000A", Author: "alice", Text: "over s2s", CreatedAt: time.Now()}
	var mu sync.Mutex
	var reports []int
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.DeliverBatchTracked(ctx, fanout.Batch{Post: post, To: to}, func(n int) {
		mu.Lock()
		reports = append(reports, n)
		mu.Unlock()
	})
	if err != nil {
		t.Fatalf("DeliverBatchTracked: %v", err)
	}
	mu.Lock()
	if len(reports) == 0 || reports[len(reports)-1] != len(to) || !slices.IsSorted(reports) {
		t.Errorf("confirmed prefixes %v, want increasing up to %d", reports, len(to))
	}
	mu.Unlock()
	if got := peer.received(); !slices.Equal(got, []string{"a@b.test", "c@b.test", "e@b.test"}) {
		t.Errorf("b.test received messages to %v", got)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return slices.Equal(store.bounces(), []string{"x@dead.test", "y@dead.test"}) },
		"bounces %v, want dead.test's recipients", store.bounces())
	c.pings.mu.Lock()
	waiting := len(c.pings.waiting)
	c.pings.mu.Unlock()
	if waiting != 0 {
		t.Errorf("%d pings still waiting", waiting)
	}
}

func TestSettleFromChecksTheDomain(t *testing.T) {
	p := newPings()
	done := make(chan error, 1)
	id := p.addFrom(nil, "b.test", func(err error) { done <- err })
	if !p.settleFrom(id, "c.test") {
		t.Fatal("an id that waits reported as unknown")
	}
	select {
	case <-done:
		t.Fatal("an answer from another domain confirmed the ping")
	default:
	}
	if !p.settleFrom(id, "B.test") {
		t.Fatal("the right domain's answer not taken")
	}
	if err := <-done; err != nil {
		t.Fatalf("done(%v)", err)
	}
	if p.settleFrom(id, "b.test") {
		t.Fatal("a settled ping still waits")
	}
}

func TestGroupByDomainAndPrefix(t *testing.T) {
	plan := groupByDomain(fanout.Batch{To: []string{"a@x.test", "b@y.test", "c@x.test", "y.test", "d@z.test/res"}})
	var got []string
	for _, g := range plan.groups {
		got = append(got, g.domain+":"+itoas(g.members))
	}
	want := []string{"x.test:0,2", "y.test:1,3", "z.test:4"}
	if !slices.Equal(got, want) {
		t.Fatalf("groups %v, want %v", got, want)
	}
	var reports []int
	p := &scatteredPrefix{done: make([]bool, 5), report: func(n int) { reports = append(reports, n) }}
	p.confirm(plan.groups[1].members) // 1, 3: nothing leading
	p.confirm(plan.groups[0].members) // 0, 2: now 0-3
	p.confirm(plan.groups[2].members) // 4: all
	if !slices.Equal(reports, []int{4, 5}) {
		t.Fatalf("reports %v, want [4 5]", reports)
	}
}

func itoas(v []int32) string {
	var parts []string
	for _, x := range v {
		parts = append(parts, strconv.Itoa(int(x)))
	}
	return strings.Join(parts, ",")
}

// TestS2SWriteChunkAllocatesNothingPerRecipient: the hot path of s2s mode,
// like the component's, writes a chunk without allocating per recipient.
func TestS2SWriteChunkAllocatesNothingPerRecipient(t *testing.T) {
	post := starling.Post{ID: "01JS2S0000000000000000000B", Author: "alice", Text: "hi", CreatedAt: time.Now()}
	allocs := func(n int) float64 {
		var jids []string
		for i := range n {
			jids = append(jids, fmt.Sprintf("f%06d@x.test", i))
		}
		raw, err := fanout.Batch{Post: post, To: jids}.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := fanout.DecodeBatch(raw)
		if err != nil {
			t.Fatal(err)
		}
		d := &s2sBatch{batch: b, plan: groupByDomain(b), msg: NewDelivery(testDomain, PayloadMinimal, post)}
		w := bufio.NewWriterSize(io.Discard, 64<<10)
		head := renderPingHead(testDomain, "x.test")
		return testing.AllocsPerRun(50, func() {
			_ = d.writeChunk(w, 0, 0, n, head, "stl-ping-0")
		})
	}
	few, many := allocs(2), allocs(400)
	t.Logf("allocations per chunk: %v for 2 recipients, %v for 400", few, many)
	if many > few {
		t.Fatalf("a chunk of 400 allocates %v times, one of 2 %v times", many, few)
	}
}

// fakeFederation records what is sent; streams are not opened.
type fakeFederation struct {
	mu   sync.Mutex
	sent map[string][]string
}

func (f *fakeFederation) Serve(ctx context.Context, _ s2s.Handler) error { <-ctx.Done(); return nil }
func (f *fakeFederation) Listening() <-chan struct{}                     { return closed() }
func (f *fakeFederation) Stream(context.Context, string) (*s2s.Outbound, error) {
	return nil, s2s.ErrUnreachable
}

func (f *fakeFederation) Send(domain string, b []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sent == nil {
		f.sent = map[string][]string{}
	}
	f.sent[domain] = append(f.sent[domain], string(b))
	return true
}

// TestSendS2SRoutesByDomain: replies built by the handlers' helpers go,
// rendered for a jabber:server stream, to their recipients' domains; so do
// pre-rendered presence probes, consecutive ones to one domain together.
func TestSendS2SRoutesByDomain(t *testing.T) {
	f := &fakeFederation{}
	c := &Component{cfg: Config{Domain: testDomain}, fed: f, log: slog.New(slog.DiscardHandler)}
	var out outbox
	bob, alice := jid.MustParse("bob@b.test/phone"), jid.MustParse("alice@"+testDomain)
	if err := c.reply(&out, bob, alice, "You now follow Alice & co"); err != nil {
		t.Fatal(err)
	}
	if err := writePresenceError(&out, alice, jid.MustParse("carol@c.test"), stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint}); err != nil {
		t.Fatal(err)
	}
	if err := c.sendS2S(out.toks); err != nil {
		t.Fatal(err)
	}
	if got := f.sent["b.test"]; len(got) != 1 || !strings.HasPrefix(got[0], "<message ") ||
		!strings.Contains(got[0], `from="alice@microblog.test"`) || !strings.Contains(got[0], "Alice &amp; co") || strings.Contains(got[0], "xmlns=") {
		t.Errorf("to b.test: %q", got)
	}
	got := f.sent["c.test"]
	if len(got) != 1 || !strings.Contains(got[0], `<resource-constraint xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">`) {
		t.Fatalf("to c.test: %q", got)
	}
	// Whatever was sent parses as one stanza in the stream's namespace.
	for _, s := range append(f.sent["b.test"], got...) {
		d := xml.NewDecoder(strings.NewReader(`<stream xmlns="jabber:server">` + s + `</stream>`))
		var st struct{ XMLName xml.Name }
		_, _ = d.Token()
		if err := d.Decode(&st); err != nil || st.XMLName.Space != "jabber:server" {
			t.Errorf("%q: %v, %v", s, err, st.XMLName)
		}
	}

	f.sent = nil
	probes := []byte(`<presence type="probe" from="alice@microblog.test" to="x@b.test"/><presence type="probe" from="alice@microblog.test" to="y@b.test"/>` +
		`<presence type="probe" from="carol@microblog.test" to="z@c.test"/>`)
	if err := c.sendRawS2S(probes); err != nil {
		t.Fatal(err)
	}
	if b := f.sent["b.test"]; len(b) != 1 || strings.Count(b[0], "<presence") != 2 {
		t.Errorf("probes to b.test: %q", b)
	}
	if c := f.sent["c.test"]; len(c) != 1 || !bytes.Contains([]byte(c[0]), []byte(`to="z@c.test"`)) {
		t.Errorf("probes to c.test: %q", c)
	}
}

// TestRunS2SFailsWhenItCannotListen: a gateway whose s2s port is taken
// fails at once instead of waiting without a link.
func TestRunS2SFailsWhenItCannotListen(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	log := slog.New(slog.DiscardHandler)
	fed, err := s2s.New(s2s.Config{Domain: testDomain, Secret: "gw", Addr: taken.Addr().String(), Insecure: true}, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(&s2sStore{}, nil, log, Config{Domain: testDomain}, WithFederation(fed))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "listen") {
			t.Fatalf("Run: %v, want the listen error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run still running 5s after its listener failed")
	}
	if c.Connected() {
		t.Fatal("connected without a listener")
	}
}
