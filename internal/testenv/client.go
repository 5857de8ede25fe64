package testenv

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"starling.dev/starling/internal/xmltok"
)

// Message is a message a Client received.
type Message struct {
	From, To, Type, ID string
	Body               string
	OriginID           string
	HasBody            bool
	// Retracts is the id in an XEP-0424 <retract/>, if any.
	Retracts string
	// Atom is the Atom entry the message carried, if any.
	Atom *AtomEntry
}

// AtomEntry is the part of an Atom entry the tests check.
type AtomEntry struct {
	ID        string `xml:"id"`
	Title     string `xml:"title"`
	Published string `xml:"published"`
	Content   string `xml:"content"`
	Author    struct {
		Name string `xml:"name"`
		URI  string `xml:"uri"`
	} `xml:"author"`
}

// Presence is a presence stanza a Client received.
type Presence struct {
	From, To, Type string
	Status         string
}

// Client is a real XMPP client logged in over c2s (SASL PLAIN on loopback).
type Client struct {
	JID  jid.JID
	sess *xmpp.Session
	msgs chan Message
	pres chan Presence
	done chan struct{}
	// approve answers subscription requests with "subscribed" when set.
	approve bool
}

// ClientOption changes how DialClient sets a client up.
type ClientOption func(*Client)

// ApproveSubscriptions makes the client grant every presence subscription
// request, as a user clicking "allow" would.
func ApproveSubscriptions() ClientOption { return func(c *Client) { c.approve = true } }

// DialClient logs user@host in at addr with a resource, sends initial
// presence, and collects incoming messages until the test ends.
func DialClient(t TB, addr, user, host, password string, opts ...ClientOption) *Client {
	t.Helper()
	// Cancelled when the test ends, long after the login: mellium resets the
	// connection's deadlines when a negotiation's context ends (see writeCtx).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	sess, err := Login(ctx, addr, user+"@"+host+"/test", password)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	conn := sess.Conn()
	c := &Client{JID: sess.LocalAddr(), sess: sess, msgs: make(chan Message, 1024), pres: make(chan Presence, 1024), done: make(chan struct{})}
	for _, o := range opts {
		o(c)
	}
	go func() {
		defer close(c.done)
		_ = sess.Serve(xmpp.HandlerFunc(c.handle))
	}()
	t.Cleanup(func() {
		_ = sess.Close()
		_ = conn.Close()
		<-c.done
	})
	if err := sess.Send(writeCtx, stanza.Presence{}.Wrap(nil)); err != nil {
		t.Fatalf("testenv: client presence: %v", err)
	}
	return c
}

// writeCtx is the context of every write through mellium. mellium watches a
// write's context in a goroutine and, when that context ends, moves the
// connection's write deadline into the past and back; a context cancelled
// just as its write returns can so break the next write, from this or
// another goroutine ("i/o timeout", seen under load). A context that never
// ends leaves the deadline alone; every wait for an answer has its own
// bound below.
var writeCtx = context.Background()

// Login opens a c2s session for the full JID at addr with SASL PLAIN on
// loopback, without TLS. Close the session and its Conn when done.
func Login(ctx context.Context, addr, fullJID, password string) (*xmpp.Session, error) {
	origin, err := jid.Parse(fullJID)
	if err != nil {
		return nil, fmt.Errorf("login %s: %w", fullJID, err)
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("login %s: dial %s: %w", origin, addr, err)
	}
	// The link is loopback without TLS; marking it Secure lets mellium offer
	// PLAIN, which the test servers allow.
	sess, err := xmpp.NewSession(ctx, origin.Domain(), origin, conn, xmpp.Secure,
		xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
			return xmpp.StreamConfig{Features: []xmpp.StreamFeature{
				xmpp.SASL("", password, sasl.Plain), xmpp.BindResource(),
			}}
		}))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("login %s: %w", origin, err)
	}
	return sess, nil
}

type wireMessage struct {
	Type     string  `xml:"type,attr"`
	From     string  `xml:"from,attr"`
	To       string  `xml:"to,attr"`
	ID       string  `xml:"id,attr"`
	Body     *string `xml:"body"`
	OriginID struct {
		ID string `xml:"id,attr"`
	} `xml:"urn:xmpp:sid:0 origin-id"`
	Retract struct {
		ID string `xml:"id,attr"`
	} `xml:"urn:xmpp:message-retract:1 retract"`
	Atom *AtomEntry `xml:"http://www.w3.org/2005/Atom entry"`
}

type wirePresence struct {
	Type   string `xml:"type,attr"`
	From   string `xml:"from,attr"`
	To     string `xml:"to,attr"`
	Status string `xml:"status"`
}

func (c *Client) handle(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t))
	switch start.Name.Local {
	case "message":
		var m wireMessage
		if err := d.Decode(&m); err != nil {
			return nil
		}
		msg := Message{From: m.From, To: m.To, Type: m.Type, ID: m.ID, OriginID: m.OriginID.ID, Retracts: m.Retract.ID, Atom: m.Atom}
		if m.Body != nil {
			msg.Body, msg.HasBody = *m.Body, true
		}
		select {
		case c.msgs <- msg:
		default: // a test that ignores its messages must not block the stream
		}
	case "presence":
		var p wirePresence
		if err := d.Decode(&p); err != nil {
			return nil
		}
		if p.Type == "subscribe" && c.approve {
			reply := stanza.Presence{To: jid.MustParse(p.From), Type: stanza.SubscribedPresence}
			if _, err := xmlstream.Copy(t, reply.Wrap(nil)); err != nil {
				return err
			}
		}
		select {
		case c.pres <- Presence{From: p.From, To: p.To, Type: p.Type, Status: p.Status}:
		default:
		}
	}
	return nil
}

// Send sends a chat message with body to the JID.
func (c *Client) Send(t TB, to, body string) {
	t.Helper()
	msg := stanza.Message{To: jid.MustParse(to), Type: stanza.ChatMessage}
	b := xmlstream.Wrap(xmlstream.Token(xml.CharData(body)), xml.StartElement{Name: xml.Name{Local: "body"}})
	if err := c.sess.Send(writeCtx, msg.Wrap(b)); err != nil {
		t.Fatalf("testenv: client send to %s: %v", to, err)
	}
}

// Next returns the next message with a body, failing the test if none
// arrives in time.
func (c *Client) Next(t TB, within time.Duration) Message {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case m := <-c.msgs:
			if m.HasBody {
				return m
			}
		case <-timer.C:
			t.Fatalf("testenv: %s received no message within %s", c.JID, within)
			return Message{}
		}
	}
}

// Ask sends body to the JID and returns the next message from that JID.
func (c *Client) Ask(t TB, to, body string) Message {
	t.Helper()
	c.Send(t, to, body)
	for {
		m := c.Next(t, 10*time.Second)
		if jid.MustParse(m.From).Bare().String() == jid.MustParse(to).Bare().String() {
			return m
		}
		t.Logf("testenv: while waiting for %s: message from %s: %q", to, m.From, m.Body)
	}
}

// Pending returns the messages received so far and not yet read.
func (c *Client) Pending() []Message {
	var out []Message
	for {
		select {
		case m := <-c.msgs:
			out = append(out, m)
		default:
			return out
		}
	}
}

// NextPresence returns the next presence matching keep, failing the test if
// none arrives in time; others are dropped.
func (c *Client) NextPresence(t TB, within time.Duration, keep func(Presence) bool) Presence {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case p := <-c.pres:
			if keep(p) {
				return p
			}
		case <-timer.C:
			t.Fatalf("testenv: %s received no matching presence within %s", c.JID, within)
			return Presence{}
		}
	}
}

// SendPresence sends a presence of the given type ("" for available) to the
// JID ("" for a broadcast).
func (c *Client) SendPresence(t TB, to string, typ stanza.PresenceType) {
	t.Helper()
	p := stanza.Presence{Type: typ}
	if to != "" {
		p.To = jid.MustParse(to)
	}
	if err := c.sess.Send(writeCtx, p.Wrap(nil)); err != nil {
		t.Fatalf("testenv: client presence to %q: %v", to, err)
	}
}

// SendRaw writes raw XML (one or more whole stanzas) to the server.
func (c *Client) SendRaw(t TB, raw string) {
	t.Helper()
	if err := c.sess.Send(writeCtx, xmltok.StripXMLNS(xml.NewDecoder(strings.NewReader(raw)))); err != nil {
		t.Fatalf("testenv: client raw send: %v", err)
	}
}

// IQ sends an IQ of the given type to the JID with the raw XML payload and
// returns the raw XML of the response (result or error).
func (c *Client) IQ(t TB, to string, typ stanza.IQType, payload string) string {
	t.Helper()
	iq := stanza.IQ{Type: typ}
	if to != "" {
		iq.To = jid.MustParse(to)
	}
	var r xml.TokenReader
	if payload != "" {
		r = xmltok.StripXMLNS(xml.NewDecoder(strings.NewReader(payload)))
	}
	// The wait is bounded here, not by SendIQ's context (see writeCtx). The
	// goroutine ends with the answer, or when the session closes at the
	// end of the test.
	type answer struct {
		xml string
		err error
	}
	answers := make(chan answer, 1)
	go func() {
		resp, err := c.sess.SendIQ(writeCtx, iq.Wrap(r))
		if err != nil {
			answers <- answer{err: err}
			return
		}
		defer resp.Close()
		out, err := render(resp)
		answers <- answer{out, err}
	}()
	select {
	case a := <-answers:
		if a.err != nil {
			t.Fatalf("testenv: iq to %s: %v", to, a.err)
		}
		return a.xml
	case <-time.After(iqTimeout):
		t.Fatalf("testenv: iq to %s: no answer within %s", to, iqTimeout)
		return ""
	}
}

// iqTimeout bounds the wait for the answer to an IQ.
const iqTimeout = 10 * time.Second

// render writes tokens back as XML the way a person would read them: a
// namespace only where it changes, and every element closed.
func render(r xml.TokenReader) (string, error) {
	var b strings.Builder
	var open []xml.Name
	space := func() string {
		if len(open) == 0 {
			return ""
		}
		return open[len(open)-1].Space
	}
	for {
		tok, err := r.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return b.String(), err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			b.WriteString("<" + t.Name.Local)
			if t.Name.Space != "" && t.Name.Space != space() {
				fmt.Fprintf(&b, ` xmlns="%s"`, t.Name.Space)
			}
			for _, a := range t.Attr {
				if a.Name.Local == "xmlns" && a.Name.Space == "" || a.Name.Space == "xmlns" {
					continue
				}
				name := a.Name.Local
				if a.Name.Space == "http://www.w3.org/XML/1998/namespace" {
					name = "xml:" + name
				}
				b.WriteString(" " + name + `="`)
				_ = xml.EscapeText(&b, []byte(a.Value))
				b.WriteString(`"`)
			}
			b.WriteString(">")
			open = append(open, t.Name)
		case xml.EndElement:
			if len(open) > 0 {
				open = open[:len(open)-1]
			}
			b.WriteString("</" + t.Name.Local + ">")
		case xml.CharData:
			_ = xml.EscapeText(&b, t)
		}
	}
	for i := len(open) - 1; i >= 0; i-- {
		b.WriteString("</" + open[i].Local + ">")
	}
	return b.String(), nil
}

// Close logs the client out (unavailable presence, end of stream).
func (c *Client) Close() {
	_ = c.sess.Close()
	<-c.done
}
