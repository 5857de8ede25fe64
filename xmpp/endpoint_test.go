package xmpp

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"maps"
	"net"
	"strconv"
	"sync"
	"testing"
)

// endpoint is the server side of XEP-0114, and nothing more, for testing
// the delivery core on a real socket: it accepts component connections,
// checks the handshake (SHA-1 of the stream id and the secret), reads the
// stanzas with encoding/xml, counts the messages per recipient and hands
// every ping to onPing, which by default answers it at once.
type endpoint struct {
	t      testing.TB
	domain string
	secret string
	ln     net.Listener
	// onPing decides what becomes of each ping; it runs on the
	// connection's reading goroutine.
	onPing func(c *endpointConn, ping endpointStanza)

	mu    sync.Mutex
	conns []*endpointConn // every connection accepted, in order
	wg    sync.WaitGroup  // the accept loop and one reader per connection
}

// endpointStanza is what the endpoint reads of a stanza.
type endpointStanza struct {
	XMLName xml.Name
	Type    string    `xml:"type,attr"`
	From    string    `xml:"from,attr"`
	To      string    `xml:"to,attr"`
	ID      string    `xml:"id,attr"`
	Body    string    `xml:"body"`
	Ping    *struct{} `xml:"urn:xmpp:ping ping"`
}

// endpointConn is one accepted component connection.
type endpointConn struct {
	ep   *endpoint
	n    int // 1 for the first connection accepted
	conn net.Conn
	wmu  sync.Mutex // serialises writes: pings may be answered from the test

	mu       sync.Mutex
	seen     map[string]int // recipient → messages received
	messages int
	pings    int
	answered int
}

// startEndpoint listens on a loopback port until the test ends. onPing
// scripts the answers to pings; nil answers each at once.
func startEndpoint(t testing.TB, domain, secret string, onPing func(c *endpointConn, ping endpointStanza)) *endpoint {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if onPing == nil {
		onPing = func(c *endpointConn, ping endpointStanza) { c.answer(ping) }
	}
	ep := &endpoint{t: t, domain: domain, secret: secret, ln: ln, onPing: onPing}
	ep.wg.Add(1)
	go ep.accept()
	t.Cleanup(ep.stop)
	return ep
}

func (ep *endpoint) addr() string { return ep.ln.Addr().String() }

// stop closes the listener and every connection and waits for their
// goroutines.
func (ep *endpoint) stop() {
	_ = ep.ln.Close()
	ep.mu.Lock()
	for _, c := range ep.conns {
		_ = c.conn.Close()
	}
	ep.mu.Unlock()
	ep.wg.Wait()
}

func (ep *endpoint) accept() {
	defer ep.wg.Done()
	for n := 1; ; n++ {
		conn, err := ep.ln.Accept()
		if err != nil {
			return // closed by stop
		}
		c := &endpointConn{ep: ep, n: n, conn: conn, seen: map[string]int{}}
		ep.mu.Lock()
		ep.conns = append(ep.conns, c)
		ep.mu.Unlock()
		ep.wg.Add(1)
		go func() {
			defer ep.wg.Done()
			defer conn.Close()
			if err := c.serve("stream-" + strconv.Itoa(n)); err != nil {
				ep.t.Logf("endpoint: connection %d: %v", n, err)
			}
		}()
	}
}

// connections returns the connections accepted so far.
func (ep *endpoint) connections() []*endpointConn {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return append([]*endpointConn(nil), ep.conns...)
}

// serve does the handshake, then reads stanzas until the stream or the
// socket ends.
func (c *endpointConn) serve(streamID string) error {
	d := xml.NewDecoder(c.conn)
	if err := c.handshake(d, streamID); err != nil {
		return err
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return nil // the component went away, or the test closed us
		}
		switch tok := tok.(type) {
		case xml.EndElement:
			c.write(`</stream:stream>`)
			return nil
		case xml.StartElement:
			var s endpointStanza
			if err := d.DecodeElement(&s, &tok); errors.Is(err, net.ErrClosed) {
				return nil // dropped by the test
			} else if err != nil {
				return fmt.Errorf("ill-formed stanza: %w", err)
			}
			c.received(s)
		}
	}
}

// handshake reads the component's stream header, answers with one carrying
// streamID and checks the component's proof of the secret.
func (c *endpointConn) handshake(d *xml.Decoder, streamID string) error {
	start, err := nextStart(d)
	if err != nil || start.Name.Local != "stream" {
		return fmt.Errorf("no stream header: %v %v", start.Name, err)
	}
	c.write(`<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:component:accept' from='` + c.ep.domain + `' id='` + streamID + `'>`)
	start, err = nextStart(d)
	if err != nil || start.Name.Local != "handshake" {
		return fmt.Errorf("no handshake: %v %v", start.Name, err)
	}
	var proof string
	if err := d.DecodeElement(&proof, &start); err != nil {
		return err
	}
	sum := sha1.Sum([]byte(streamID + c.ep.secret))
	if proof != hex.EncodeToString(sum[:]) {
		c.write(`<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`)
		return fmt.Errorf("wrong handshake %q", proof)
	}
	c.write(`<handshake/>`)
	return nil
}

func nextStart(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		if s, ok := tok.(xml.StartElement); ok {
			return s, nil
		}
	}
}

func (c *endpointConn) received(s endpointStanza) {
	switch {
	case s.XMLName.Local == "message":
		c.mu.Lock()
		c.seen[s.To]++
		c.messages++
		c.mu.Unlock()
	case s.XMLName.Local == "iq" && s.Type == "get" && s.Ping != nil:
		c.mu.Lock()
		c.pings++
		c.mu.Unlock()
		c.ep.onPing(c, s)
	}
}

// answer sends the result of ping, as a server does once it has routed
// everything before it.
func (c *endpointConn) answer(ping endpointStanza) {
	c.mu.Lock()
	c.answered++
	c.mu.Unlock()
	c.write(`<iq type='result' from='` + ping.To + `' to='` + ping.From + `' id='` + ping.ID + `'/>`)
}

// drop resets the connection, as a crashing server would: the component's
// next write fails rather than filling the socket's buffer.
func (c *endpointConn) drop() {
	if tc, ok := c.conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.conn.Close()
}

func (c *endpointConn) write(s string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, _ = c.conn.Write([]byte(s))
}

// counts returns what the connection has received and answered so far.
func (c *endpointConn) counts() (messages, pings, answered int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.messages, c.pings, c.answered
}

// recipients returns a copy of the messages received per recipient.
func (c *endpointConn) recipients() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.seen)
}
