package testenv

import (
	"context"
	"encoding/xml"
	"net"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// Message is a message a Client received.
type Message struct {
	From, To, Type, ID string
	Body               string
	OriginID           string
	HasBody            bool
}

// Client is a real XMPP client logged in over c2s (SASL PLAIN on loopback).
type Client struct {
	JID  jid.JID
	sess *xmpp.Session
	msgs chan Message
	done chan struct{}
}

// DialClient logs user@host in at addr with a resource, sends initial
// presence, and collects incoming messages until the test ends.
func DialClient(t testing.TB, addr, user, host, password string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("testenv: client dial %s: %v", addr, err)
	}
	origin := jid.MustParse(user + "@" + host + "/test")
	// The link is loopback without TLS; marking it Secure lets mellium offer
	// PLAIN, which the test server allows.
	sess, err := xmpp.NewSession(ctx, origin.Domain(), origin, conn, xmpp.Secure,
		xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
			return xmpp.StreamConfig{Features: []xmpp.StreamFeature{
				xmpp.SASL("", password, sasl.Plain), xmpp.BindResource(),
			}}
		}))
	if err != nil {
		conn.Close()
		t.Fatalf("testenv: client login %s: %v", origin, err)
	}
	c := &Client{JID: sess.LocalAddr(), sess: sess, msgs: make(chan Message, 1024), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		_ = sess.Serve(xmpp.HandlerFunc(c.handle))
	}()
	t.Cleanup(func() {
		_ = sess.Close()
		_ = conn.Close()
		<-c.done
	})
	if err := sess.Send(ctx, stanza.Presence{}.Wrap(nil)); err != nil {
		t.Fatalf("testenv: client presence: %v", err)
	}
	return c
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
}

func (c *Client) handle(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	if start.Name.Local != "message" {
		return nil
	}
	var m wireMessage
	if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t)).Decode(&m); err != nil {
		return nil
	}
	msg := Message{From: m.From, To: m.To, Type: m.Type, ID: m.ID, OriginID: m.OriginID.ID}
	if m.Body != nil {
		msg.Body, msg.HasBody = *m.Body, true
	}
	select {
	case c.msgs <- msg:
	default: // a test that ignores its messages must not block the stream
	}
	return nil
}

// Send sends a chat message with body to the JID.
func (c *Client) Send(t testing.TB, to, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg := stanza.Message{To: jid.MustParse(to), Type: stanza.ChatMessage}
	b := xmlstream.Wrap(xmlstream.Token(xml.CharData(body)), xml.StartElement{Name: xml.Name{Local: "body"}})
	if err := c.sess.Send(ctx, msg.Wrap(b)); err != nil {
		t.Fatalf("testenv: client send to %s: %v", to, err)
	}
}

// Next returns the next message with a body, failing the test if none
// arrives in time.
func (c *Client) Next(t testing.TB, within time.Duration) Message {
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
func (c *Client) Ask(t testing.TB, to, body string) Message {
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
