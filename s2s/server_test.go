package s2s_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"mellium.im/xmlstream"

	"starling.dev/starling/dialback"
	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/s2s"
)

// recorder is a Handler that keeps what it is handed.
type recorder struct {
	mu       sync.Mutex
	stanzas  []received
	closed   int
	received chan received
}

type received struct {
	Name     string
	From, To string
	Body     string
}

func newRecorder() *recorder { return &recorder{received: make(chan received, 1024)} }

func (r *recorder) HandleStanza(t xml.TokenReader, start *xml.StartElement) {
	var m struct {
		From string `xml:"from,attr"`
		To   string `xml:"to,attr"`
		Body string `xml:"body"`
	}
	if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t)).Decode(&m); err != nil {
		return
	}
	got := received{Name: start.Name.Local, From: m.From, To: m.To, Body: m.Body}
	r.mu.Lock()
	r.stanzas = append(r.stanzas, got)
	r.mu.Unlock()
	r.received <- got
}

func (r *recorder) OutboundClosed(*s2s.Outbound) {
	r.mu.Lock()
	r.closed++
	r.mu.Unlock()
}

func (r *recorder) closedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// next returns the next stanza handed over, failing the test after within.
func (r *recorder) next(t *testing.T, within time.Duration) received {
	t.Helper()
	select {
	case m := <-r.received:
		return m
	case <-time.After(within):
		t.Fatalf("no stanza handed over within %s", within)
		return received{}
	}
}

// node is one server under test.
type node struct {
	srv     *s2s.Server
	rec     *recorder
	metrics *s2s.Metrics
	reg     *prometheus.Registry
	addr    string
}

// startNode serves cfg (Domain, Secret, TLS, Insecure, Hosts...) on cfg.Addr
// until the test ends.
func startNode(t *testing.T, cfg s2s.Config) *node {
	t.Helper()
	reg := prometheus.NewRegistry()
	n := &node{rec: newRecorder(), reg: reg, metrics: s2s.NewMetrics(reg)}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := s2s.New(cfg, log, n.metrics)
	if err != nil {
		t.Fatal(err)
	}
	n.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, n.rec) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return within 10s of its end")
		}
	})
	select {
	case <-srv.Listening():
	case err := <-served:
		t.Fatalf("Serve: %v", err)
	}
	n.addr = srv.Addr().String()
	return n
}

// value is the metric's value for the label value (the first label), 0
// when it has none yet.
func (n *node) value(t *testing.T, name, label string) float64 {
	t.Helper()
	families, err := n.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() != label {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// pair starts a.test and b.test, each knowing where the other listens.
// secure gives both a certificate and refuses plaintext.
func pair(t *testing.T, secure bool) (a, b *node) {
	t.Helper()
	pa, pb := testenv.FreePort(t), testenv.FreePort(t)
	cfg := func(domain string, port int, other string, otherPort int) s2s.Config {
		c := s2s.Config{
			Domain: domain, Secret: "secret of " + domain, Addr: testenv.Addr(port),
			Hosts: map[string]string{other: testenv.Addr(otherPort)}, Insecure: !secure,
		}
		if secure {
			cert := testenv.SelfSignedCert(t, "", domain)
			c.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}}
		}
		return c
	}
	a = startNode(t, cfg("a.test", pa, "b.test", pb))
	b = startNode(t, cfg("b.test", pb, "a.test", pa))
	return a, b
}

// message renders a chat message.
func message(from, to, body string) []byte {
	return []byte(fmt.Sprintf(`<message type="chat" from=%q to=%q><body>%s</body></message>`, from, to, body))
}

func writeMessage(t *testing.T, o *s2s.Outbound, from, to, body string) {
	t.Helper()
	err := o.Write(func(w *bufio.Writer) error {
		_, err := w.Write(message(from, to, body))
		return err
	})
	if err != nil {
		t.Fatalf("write: %v", err)
	}
}

func TestFederatePair(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", secure), func(t *testing.T) {
			a, b := pair(t, secure)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			o, err := a.srv.Stream(ctx, "b.test")
			if err != nil {
				t.Fatalf("Stream: %v", err)
			}
			t.Logf("a.test → b.test ready in %s (both streams, dialback both ways)", time.Since(start).Round(time.Millisecond))
			if o.Secure() != secure {
				t.Fatalf("Secure() = %v, want %v", o.Secure(), secure)
			}
			writeMessage(t, o, "alice@a.test", "bob@b.test", "hello")
			got := b.rec.next(t, 5*time.Second)
			if want := (received{Name: "message", From: "alice@a.test", To: "bob@b.test", Body: "hello"}); got != want {
				t.Fatalf("b.test got %+v, want %+v", got, want)
			}
			// The other way, through the queue.
			if !b.srv.Send("a.test", message("bob@b.test/phone", "alice@a.test", "hi")) {
				t.Fatal("Send refused")
			}
			if got := a.rec.next(t, 5*time.Second); got.Body != "hi" || got.From != "bob@b.test/phone" {
				t.Fatalf("a.test got %+v", got)
			}
			for _, n := range []*node{a, b} {
				if f := n.value(t, "starling_s2s_dialback_failures_total", "in") + n.value(t, "starling_s2s_dialback_failures_total", "out"); f != 0 {
					t.Errorf("%s: %v dialback failures", n.srv.Domain(), f)
				}
			}
		})
	}
}

// TestPlaintextRefused: a server that must use TLS refuses a peer that
// offers none, and a peer that will not start it.
func TestPlaintextRefused(t *testing.T) {
	pa, pb := testenv.FreePort(t), testenv.FreePort(t)
	cert := testenv.SelfSignedCert(t, "", "a.test")
	a := startNode(t, s2s.Config{
		Domain: "a.test", Secret: "sa", Addr: testenv.Addr(pa), TLS: &tls.Config{Certificates: []tls.Certificate{cert.TLS}},
		Hosts: map[string]string{"b.test": testenv.Addr(pb)},
	})
	b := startNode(t, s2s.Config{Domain: "b.test", Secret: "sb", Addr: testenv.Addr(pb), Insecure: true, Hosts: map[string]string{"a.test": testenv.Addr(pa)}})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := a.srv.Stream(ctx, "b.test")
	if !errors.Is(err, s2s.ErrUnreachable) || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("a.test → plaintext b.test: %v, want ErrUnreachable about TLS", err)
	}
	if n := a.value(t, "starling_s2s_refused_total", "plaintext"); n < 1 {
		t.Fatalf("refused{plaintext} = %v", n)
	}

	// A raw plaintext peer that ignores the required STARTTLS and asks
	// for dialback is refused with policy-violation.
	conn := rawPeer(t, a.addr, "b.test", "a.test")
	conn.send(t, dialback.Element{Kind: dialback.Result, From: "b.test", To: "a.test", Key: "k"}.Append(nil))
	if cond := conn.streamError(t); cond != "policy-violation" {
		t.Fatalf("stream error %q, want policy-violation", cond)
	}
	_ = b
}

// TestWrongKey: a server claiming to be b.test without b.test's secret is
// refused: a.test asks the real b.test, which denies the key.
func TestWrongKey(t *testing.T) {
	a, b := pair(t, false)
	impostor := startNode(t, s2s.Config{
		Domain: "b.test", Secret: "not b's secret", Addr: testenv.Addr(testenv.FreePort(t)), Insecure: true,
		Hosts: map[string]string{"a.test": a.addr},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := impostor.srv.Stream(ctx, "a.test")
	if !errors.Is(err, s2s.ErrUnreachable) {
		t.Fatalf("impostor's stream: %v, want ErrUnreachable", err)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return a.value(t, "starling_s2s_dialback_failures_total", "in") >= 1 },
		"a.test did not count the refused key")
	if n := impostor.value(t, "starling_s2s_dialback_failures_total", "out"); n != 1 {
		t.Fatalf("impostor: dialback failures out = %v, want 1", n)
	}
	// The real b.test still federates, and the impostor's stanza never
	// reached a.test's handler.
	o, err := b.srv.Stream(ctx, "a.test")
	if err != nil {
		t.Fatalf("real b.test: %v", err)
	}
	writeMessage(t, o, "bob@b.test", "alice@a.test", "real")
	if got := a.rec.next(t, 5*time.Second); got.Body != "real" {
		t.Fatalf("a.test got %+v", got)
	}
}

// TestGarbage: a peer that sends what is not XMPP gets a stream error and
// is disconnected; the server goes on serving others.
func TestGarbage(t *testing.T) {
	a, b := pair(t, false)
	for _, c := range []struct {
		name, header, then, cond string
	}{
		{"not XML", "", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage<<>>", ""},
		{"broken XML", stdHeader("b.test", "a.test"), `<db:result from="b.test" to="a.test"><<<</db:result>`, "not-well-formed"},
		{"unauthenticated stanza", stdHeader("b.test", "a.test"), string(message("bob@b.test", "alice@a.test", "spoof")), "invalid-from"},
		{"wrong namespace", `<stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams" version="1.0" to="a.test">`, "", "invalid-namespace"},
		{"unknown host", stdHeader("b.test", "c.test"), "", "host-unknown"},
		{"huge element", stdHeader("b.test", "a.test"), `<db:result from="b.test" to="a.test">` + strings.Repeat("x", 600<<10) + "</db:result>", "policy-violation"},
		{"malformed dialback", stdHeader("b.test", "a.test"), `<db:result from="b.test" to="a.test"/>`, "improper-addressing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", a.addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(conn, c.header+c.then); err != nil {
				t.Fatal(err)
			}
			reply, _ := io.ReadAll(conn) // until a.test hangs up
			if c.cond != "" && !strings.Contains(string(reply), "<"+c.cond+" ") {
				t.Fatalf("reply %q lacks the stream error %s", reply, c.cond)
			}
			if !strings.HasSuffix(string(reply), "</stream:stream>") {
				t.Fatalf("reply %q does not end the stream", reply)
			}
		})
	}
	a.rec.mu.Lock()
	got := len(a.rec.stanzas)
	a.rec.mu.Unlock()
	if got != 0 {
		t.Fatalf("a.test's handler got %d stanzas from garbage peers", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o, err := b.srv.Stream(ctx, "a.test")
	if err != nil {
		t.Fatalf("after the garbage: %v", err)
	}
	writeMessage(t, o, "bob@b.test", "alice@a.test", "still here")
	if got := a.rec.next(t, 5*time.Second); got.Body != "still here" {
		t.Fatalf("a.test got %+v", got)
	}
}

func stdHeader(from, to string) string {
	return fmt.Sprintf(`<?xml version='1.0'?><stream:stream xmlns="jabber:server" xmlns:stream="http://etherx.jabber.org/streams" xmlns:db="jabber:server:dialback" version="1.0" from=%q to=%q>`, from, to)
}

// rawConn is a hand-driven peer connection.
type rawConn struct {
	net.Conn
	d *xml.Decoder
}

// rawPeer opens a stream from domain to the server at addr and reads the
// header and features.
func rawPeer(t *testing.T, addr, from, to string) *rawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &rawConn{Conn: conn, d: xml.NewDecoder(conn)}
	c.send(t, []byte(stdHeader(from, to)))
	return c
}

func (c *rawConn) send(t *testing.T, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// streamError reads until the peer's stream error and returns its
// condition.
func (c *rawConn) streamError(t *testing.T) string {
	t.Helper()
	inError := false
	for {
		tok, err := c.d.Token()
		if err != nil {
			t.Fatalf("no stream error: %v", err)
		}
		if s, ok := tok.(xml.StartElement); ok {
			if s.Name.Local == "error" && s.Name.Space == "http://etherx.jabber.org/streams" {
				inError = true
			} else if inError {
				return s.Name.Local
			}
		}
	}
}

// TestIdleAndBackoff: an idle stream closes and the next use opens a new
// one; a domain that cannot be reached is left alone for MinBackoff.
func TestIdleAndBackoff(t *testing.T) {
	pa, pb, dead := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	a := startNode(t, s2s.Config{
		Domain: "a.test", Secret: "sa", Addr: testenv.Addr(pa), Insecure: true, IdleTimeout: 300 * time.Millisecond,
		MinBackoff: time.Minute, Hosts: map[string]string{"b.test": testenv.Addr(pb), "dead.test": testenv.Addr(dead)},
	})
	b := startNode(t, s2s.Config{Domain: "b.test", Secret: "sb", Addr: testenv.Addr(pb), Insecure: true, Hosts: map[string]string{"a.test": testenv.Addr(pa)}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	o, err := a.srv.Stream(ctx, "b.test")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-o.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("idle stream still open after 5s")
	}
	testenv.Eventually(t, 2*time.Second, func() bool { return a.rec.closedCount() == 1 }, "OutboundClosed not called")
	o2, err := a.srv.Stream(ctx, "b.test")
	if err != nil || o2 == o {
		t.Fatalf("after the idle close: %v (same stream: %v)", err, o2 == o)
	}
	writeMessage(t, o2, "alice@a.test", "bob@b.test", "again")
	if got := b.rec.next(t, 5*time.Second); got.Body != "again" {
		t.Fatalf("b.test got %+v", got)
	}

	_, err = a.srv.Stream(ctx, "dead.test")
	var ue *s2s.UnreachableError
	if !errors.As(err, &ue) || !ue.Until.IsZero() {
		t.Fatalf("first try of dead.test: %v", err)
	}
	start := time.Now()
	_, err = a.srv.Stream(ctx, "dead.test")
	if !errors.As(err, &ue) || ue.Until.IsZero() || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("second try of dead.test: %v after %s, want an immediate refusal until a time", err, time.Since(start))
	}
	if a.srv.Send("dead.test", message("alice@a.test", "x@dead.test", "lost")) {
		t.Fatal("Send to a backing-off domain accepted")
	}
}

// TestSRV: without a Hosts entry the remote server is found through DNS
// SRV records.
func TestSRV(t *testing.T) {
	dns := testenv.StartDNS(t)
	pa, pb := testenv.FreePort(t), testenv.FreePort(t)
	dns.AddSRV(t, "b.test", "host-b.test", pb)
	dns.AddA(t, "host-b.test", "127.0.0.1")
	dns.AddSRV(t, "a.test", "host-a.test", pa)
	dns.AddA(t, "host-a.test", "127.0.0.1")
	a := startNode(t, s2s.Config{Domain: "a.test", Secret: "sa", Addr: testenv.Addr(pa), Insecure: true, Resolver: dns.Resolver()})
	b := startNode(t, s2s.Config{Domain: "b.test", Secret: "sb", Addr: testenv.Addr(pb), Insecure: true, Resolver: dns.Resolver()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o, err := a.srv.Stream(ctx, "b.test")
	if err != nil {
		t.Fatal(err)
	}
	writeMessage(t, o, "alice@a.test", "bob@b.test", "via SRV")
	if got := b.rec.next(t, 5*time.Second); got.Body != "via SRV" {
		t.Fatalf("b.test got %+v", got)
	}
	if dns.Asked("_xmpp-server._tcp.b.test") == 0 || dns.Asked("_xmpp-server._tcp.a.test") == 0 {
		t.Fatal("the SRV records were not asked for")
	}
}

// TestBusyDomainGetsAnotherStream: while a write to a domain is under way
// on its only stream, the next caller gets a second stream once it is
// ready, and both carry stanzas to the peer.
func TestBusyDomainGetsAnotherStream(t *testing.T) {
	a, b := pair(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, err := a.srv.Stream(ctx, "b.test")
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	// A write that holds the first stream until released.
	inWrite, release := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- first.Write(func(w *bufio.Writer) error {
			close(inWrite)
			<-release
			_, err := w.Write(message("alice@a.test", "bob@b.test", "held"))
			return err
		})
	}()
	<-inWrite
	var second *s2s.Outbound
	testenv.Eventually(t, 10*time.Second, func() bool {
		o, err := a.srv.Stream(ctx, "b.test")
		if err == nil && o != first {
			second = o
			return true
		}
		return false
	}, "no second stream to a domain whose only stream is busy")
	writeMessage(t, second, "alice@a.test", "bob@b.test", "beside")
	if got := b.rec.next(t, 5*time.Second); got.Body != "beside" {
		t.Fatalf("b.test got %+v first, want the message written beside the held one", got)
	}
	close(release)
	if err := <-held; err != nil {
		t.Fatalf("held write: %v", err)
	}
	if got := b.rec.next(t, 5*time.Second); got.Body != "held" {
		t.Fatalf("b.test got %+v, want the held message", got)
	}
	// Idle again: the least busy stream is one of the two, and no third
	// is opened.
	o, err := a.srv.Stream(ctx, "b.test")
	if err != nil || (o != first && o != second) {
		t.Fatalf("Stream when idle = %p, %v; want one of the two streams", o, err)
	}
}
