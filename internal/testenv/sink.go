package testenv

import (
	"context"
	"fmt"
	"net"
	"time"

	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
)

// Sink is a bare XEP-0114 component that counts what the XMPP server routes
// to its domain. Followers at the sink's domain stand in for a million
// recipients without a million c2s accounts.
type Sink struct {
	Domain string
	// Scan counts SinkMessages, SinkIQs, then the extra patterns given to
	// StartSink, in that order.
	Scan *Scanner
	conn net.Conn
	done chan struct{}
}

// Indexes of a Sink's own patterns in Sink.Scan.
const (
	SinkMessages = 0 // "<message"
	SinkIQs      = 1 // "<iq"
)

// DialComponent logs a component in for domain at addr (the XEP-0114
// handshake, by mellium) and returns the bare connection: from then on the
// caller reads and writes raw bytes. Keep ctx alive after it returns (cancel
// it when the connection is done): mellium resets the connection's
// deadlines when the handshake's context ends, which can fail the first
// reads of a fresh connection if that happens as the handshake returns.
func DialComponent(ctx context.Context, addr, domain, secret string) (net.Conn, error) {
	d, err := jid.Parse(domain)
	if err != nil {
		return nil, fmt.Errorf("component %s: %w", domain, err)
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("component %s: %w", domain, err)
	}
	// The session is only used for the handshake. Nothing is sent to the
	// component before <handshake/>, so no stanza sits in mellium's buffer.
	if _, err := component.NewSession(ctx, d, []byte(secret), conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("component %s handshake: %w", domain, err)
	}
	return conn, nil
}

// StartSink connects a component for domain to the component port at addr
// (ComponentAddrOf the domain) with secret, and counts what it receives until
// the test ends: messages, IQs and any further patterns.
func StartSink(t TB, addr, secret, domain string, patterns ...string) *Sink {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel) // not before: see DialComponent
	conn, err := DialComponent(ctx, addr, domain, secret)
	if err != nil {
		t.Fatalf("testenv: sink: %v", err)
	}
	s := &Sink{Domain: domain, conn: conn, Scan: NewScanner(append([]string{"<message", "<iq"}, patterns...)...), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_ = s.Scan.Pump(conn)
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		<-s.done
	})
	return s
}

// Count is how many messages arrived so far.
func (s *Sink) Count() int64 { return s.Scan.Count(SinkMessages) }
