package testenv

import (
	"context"
	"encoding/xml"
	"net"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

func TestEjabberd(t *testing.T) {
	t.Parallel()
	began := time.Now()
	srv := StartEjabberd(t)
	started := time.Since(began)
	began = time.Now()
	srv.Register(t, "carol", "carolpass")
	t.Logf("StartEjabberd took %s, Register %s", started.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	exerciseServer(t, srv)
}

func TestProsody(t *testing.T) {
	t.Parallel()
	exerciseServer(t, StartProsody(t))
}

// exerciseServer shows what Starling needs of every XMPPServer: accounts, a
// client login, a component login, messages both ways between them, presence
// subscriptions and probes between a user and the component, and a restart
// that keeps accounts and rosters.
func exerciseServer(t *testing.T, srv XMPPServer) {
	info := srv.Info()
	// Registering twice must work and leave the second password in place.
	srv.Register(t, "bob", "old-password")
	srv.Register(t, "bob", "bobpass")
	bobJID, alice := "bob@"+info.Host, "alice@"+info.ComponentDomain
	fromBob := func(typ string) func(presence) bool {
		return func(p presence) bool { return p.Type == typ && jid.MustParse(p.From).Bare().String() == bobJID }
	}

	messages := func(round string, comp *testComponent, bob *Client) {
		t.Helper()
		bob.Send(t, alice, "hello alice "+round)
		cm := comp.nextMessage(t)
		if jid.MustParse(cm.From).Bare().String() != bobJID || cm.To != alice || cm.Body != "hello alice "+round {
			t.Fatalf("%s: the component received %+v", round, cm)
		}
		comp.send(t, alice, bobJID, "hello bob "+round)
		m := bob.Next(t, 10*time.Second)
		if m.From != alice || m.Body != "hello bob "+round {
			t.Fatalf("%s: bob received %+v", round, m)
		}
	}

	// Before the restart: messages, then the component subscribes to bob's
	// presence and bob (a second login that approves requests) agrees.
	comp := dialComponent(t, info)
	messages("before restart", comp, DialClient(t, info.C2SAddr, "bob", info.Host, "bobpass"))
	dialApprover(t, info, "bob", "bobpass")
	comp.sendPresence(t, alice, bobJID, stanza.SubscribePresence)
	comp.nextPresence(t, "subscribed from bob", fromBob("subscribed"))
	comp.nextPresence(t, "bob's presence after he approved", fromBob(""))

	began := time.Now()
	srv.Restart(t)
	t.Logf("%s restarted in %s", info.Name, time.Since(began).Round(time.Millisecond))
	if srv.Info() != info {
		t.Fatalf("restart changed the server's addresses: %+v, was %+v", srv.Info(), info)
	}

	// After it: bob logs in again, and a new component connection probes his
	// presence, as the gateway does when it comes back; the answer shows the
	// subscription (the roster) survived. The logins come first so that their
	// presence broadcasts do not reach the component before the probe does.
	bob := DialClient(t, info.C2SAddr, "bob", info.Host, "bobpass")
	comp = dialComponent(t, info)
	comp.sendPresence(t, alice, bobJID, stanza.ProbePresence)
	comp.nextPresence(t, "bob's presence in answer to a probe", fromBob(""))
	messages("after restart", comp, bob)
}

type presence struct {
	From string `xml:"from,attr"`
	To   string `xml:"to,attr"`
	Type string `xml:"type,attr"`
}

type componentMessage struct {
	From string `xml:"from,attr"`
	To   string `xml:"to,attr"`
	Type string `xml:"type,attr"`
	Body string `xml:"body"`
}

// testComponent is a bare XEP-0114 component that records the messages and
// presence it receives.
type testComponent struct {
	sess *xmpp.Session
	msgs chan componentMessage
	pres chan presence
}

func dialComponent(t *testing.T, info ServerInfo) *testComponent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", info.ComponentAddr)
	if err != nil {
		t.Fatalf("component dial %s: %v", info.ComponentAddr, err)
	}
	domain := jid.MustParse(info.ComponentDomain)
	sess, err := component.NewSession(ctx, domain, []byte(info.Secret), conn)
	if err != nil {
		conn.Close()
		t.Fatalf("component login as %s: %v", domain, err)
	}
	c := &testComponent{sess: sess, msgs: make(chan componentMessage, 64), pres: make(chan presence, 64)}
	serve(t, sess, conn, func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), r))
		switch start.Name.Local {
		case "message":
			var m componentMessage
			if d.Decode(&m) == nil {
				select {
				case c.msgs <- m:
				default: // never block the stream
				}
			}
		case "presence":
			var p presence
			if d.Decode(&p) == nil {
				select {
				case c.pres <- p:
				default:
				}
			}
		}
		return nil
	})
	return c
}

// serve runs the session's input loop until the test ends.
func serve(t *testing.T, sess *xmpp.Session, conn net.Conn, h xmpp.HandlerFunc) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sess.Serve(h)
	}()
	t.Cleanup(func() {
		_ = sess.Close()
		_ = conn.Close()
		<-done
	})
}

func (c *testComponent) nextMessage(t *testing.T) componentMessage {
	t.Helper()
	var m componentMessage
	Eventually(t, 10*time.Second, func() bool {
		select {
		case m = <-c.msgs:
			return true
		default:
			return false
		}
	}, "the component received no message")
	return m
}

// nextPresence waits for a presence that matches, dropping others.
func (c *testComponent) nextPresence(t *testing.T, what string, match func(presence) bool) presence {
	t.Helper()
	var got presence
	Eventually(t, 10*time.Second, func() bool {
		for {
			select {
			case got = <-c.pres:
				if match(got) {
					return true
				}
			default:
				return false
			}
		}
	}, "the component did not receive %s", what)
	return got
}

// send writes a chat message from a JID at the component's domain: servers
// do not fill in from for components (ejabberd drops the stream without it).
func (c *testComponent) send(t *testing.T, from, to, body string) {
	t.Helper()
	msg := stanza.Message{From: jid.MustParse(from), To: jid.MustParse(to), Type: stanza.ChatMessage}
	c.write(t, msg.Wrap(xmlstream.Wrap(xmlstream.Token(xml.CharData(body)), xml.StartElement{Name: xml.Name{Local: "body"}})))
}

func (c *testComponent) sendPresence(t *testing.T, from, to string, typ stanza.PresenceType) {
	t.Helper()
	c.write(t, stanza.Presence{From: jid.MustParse(from), To: jid.MustParse(to), Type: typ}.Wrap(nil))
}

func (c *testComponent) write(t *testing.T, r xml.TokenReader) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.sess.Send(ctx, r); err != nil {
		t.Fatalf("component send: %v", err)
	}
}

// dialApprover logs user in (resource "approver"), sends initial presence
// and grants every subscription request, as a user clicking "allow" would.
func dialApprover(t *testing.T, info ServerInfo, user, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, err := Login(ctx, info.C2SAddr, user+"@"+info.Host+"/approver", password)
	if err != nil {
		t.Fatalf("approver %v", err)
	}
	conn := sess.Conn()
	serve(t, sess, conn, func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		if start.Name.Local != "presence" {
			return nil
		}
		var p presence
		if xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), r)).Decode(&p) != nil || p.Type != "subscribe" {
			return nil
		}
		// Reply through the handler's encoder: Serve holds the stream.
		_, err := xmlstream.Copy(r, stanza.Presence{To: jid.MustParse(p.From), Type: stanza.SubscribedPresence}.Wrap(nil))
		return err
	})
	if err := sess.Send(ctx, stanza.Presence{}.Wrap(nil)); err != nil {
		t.Fatalf("approver presence: %v", err)
	}
}
