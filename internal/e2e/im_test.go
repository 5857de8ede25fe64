package e2e

import (
	"context"
	"encoding/xml"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/subscribers"
)

// eachServerWith is eachServer with the gateway and API configured by env
// on top of the usual settings.
func eachServerWith(t *testing.T, env map[string]string, f func(t *testing.T, s *stack)) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) { f(t, startStack(t, srv.start(t), env)) })
	}
}

// state reads what the gateway knows of a follower.
func (s *stack) state(t testing.TB, jid string) subscribers.FollowerState {
	t.Helper()
	st, err := s.store.State(context.Background(), jid)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// roundTrip pings the service over the client's stream. The server and the
// component handle a sender's stanzas in order, so when the answer arrives
// every reply to what the client sent before has arrived too.
func roundTrip(t testing.TB, s *stack, c *testenv.Client) {
	t.Helper()
	if r := c.IQ(t, s.srv.ComponentDomain, stanza.GetIQ, `<ping xmlns="urn:xmpp:ping"/>`); !strings.Contains(r, `type="result"`) {
		t.Fatalf("ping answered with %s", r)
	}
}

func TestIMCommandSet(t *testing.T) {
	eachServer(t, func(t *testing.T, s *stack) {
		alice := s.createUser(t, "alice")
		s.createUser(t, "carol")
		bob := s.client(t, "bob")
		service := s.srv.ComponentDomain
		s.post(t, alice, "first words")
		steps := []struct{ to, body, want string }{
			{service, "following", "You follow nobody yet"},
			{service, "follow alice", "You now follow Alice (alice)"},
			{s.authorJID("carol"), "sub", "You now follow Carol (carol)"},
			{service, "following", "You follow 2: alice, carol"},
			{service, "whois alice", "Alice (alice@" + service + "): 1 follower, 1 post, the latest "},
			{s.authorJID("alice"), "last", "Alice (alice), "},
			{service, "get @carol", "Carol (carol) has not posted yet."},
			{service, "last", "Usage: last <user>"},
			{service, "off", "Deliveries paused"},
			{service, "on", "Deliveries are on"},
			{service, "quit", "Deliveries paused"},
		}
		for _, st := range steps {
			if r := bob.Ask(t, st.to, st.body); !strings.Contains(r.Body, st.want) {
				t.Errorf("%q to %s: %q, want %q", st.body, st.to, r.Body, st.want)
			}
		}
		// Paused: a post goes to nobody; "on" brings the next one.
		skipped := s.post(t, alice, "while paused")
		s.drained(t)
		bob.Ask(t, service, "stop") // still paused; and a round trip
		bob.Ask(t, service, "ON")
		next := s.post(t, alice, "after on")
		if m := expectPost(t, s, bob, next, "after on"); m.OriginID == skipped.ID {
			t.Fatal("a paused follower got a post")
		}
	})
}

// TestRosterFollowing runs the gateway with STARLING_PAYLOAD=atom, whose
// deliveries carry the Atom entry it checks.
func TestRosterFollowing(t *testing.T) {
	eachServerWith(t, map[string]string{"STARLING_PAYLOAD": "atom"}, func(t *testing.T, s *stack) {
		alice := s.createUser(t, "alice")
		first := s.post(t, alice, "a status worth showing in a roster")
		s.xmpp.Register(t, "bob", "bob-pw")
		bob := testenv.DialClient(t, s.srv.C2SAddr, "bob", s.srv.Host, "bob-pw", testenv.ApproveSubscriptions())
		aliceJID := s.authorJID("alice")
		fromAlice := func(typ string) func(testenv.Presence) bool {
			return func(p testenv.Presence) bool { return bare(p.From) == aliceJID && p.Type == typ }
		}

		bob.SendPresence(t, aliceJID, stanza.SubscribePresence)
		avail := bob.NextPresence(t, 10*time.Second, fromAlice(""))
		// Servers turn the "subscribed" answer into a roster push rather
		// than pass it on: bob's roster shows it.
		testenv.Eventually(t, 10*time.Second, func() bool {
			r := bob.IQ(t, "", stanza.GetIQ, `<query xmlns="jabber:iq:roster"/>`)
			return strings.Contains(r, `jid="`+aliceJID+`"`) && (strings.Contains(r, `subscription="to"`) || strings.Contains(r, `subscription="both"`))
		}, "alice never approved bob's subscription")
		if !strings.HasPrefix(avail.Status, first.Text) {
			t.Errorf("alice's presence status %q, want her latest post", avail.Status)
		}
		if f := s.profile(t, "alice").Followers; f != 1 {
			t.Fatalf("followers after a roster subscription: %d", f)
		}
		// Same relation as following by IM.
		if r := bob.Ask(t, s.srv.ComponentDomain, "following"); r.Body != "You follow 1: alice" {
			t.Fatalf("following: %q", r.Body)
		}
		st := s.post(t, alice, "hello, roster")
		m := expectPost(t, s, bob, st, "hello, roster")
		if m.Atom == nil || m.Atom.Author.Name != "Alice" || m.Atom.Content != "hello, roster" || m.Atom.Published == "" ||
			!strings.HasSuffix(m.Atom.ID, ":post:"+st.ID) || m.Atom.Author.URI != "xmpp:"+aliceJID {
			t.Errorf("Atom entry %+v", m.Atom)
		}

		// A fresh login: bob's server probes alice for him, and we answer
		// with her latest post.
		bob.Close()
		bob = testenv.DialClient(t, s.srv.C2SAddr, "bob", s.srv.Host, "bob-pw", testenv.ApproveSubscriptions())
		if p := bob.NextPresence(t, 10*time.Second, fromAlice("")); !strings.HasPrefix(p.Status, "hello, roster") {
			t.Errorf("probe answered with status %q", p.Status)
		}

		bob.SendPresence(t, aliceJID, stanza.UnsubscribePresence)
		testenv.Eventually(t, 5*time.Second, func() bool { return s.profile(t, "alice").Followers == 0 }, "unsubscribe did not unfollow")

		// Subscribing to an author who does not exist is refused: the
		// server drops the pending request from bob's roster.
		ghost := s.authorJID("nobody")
		bob.SendPresence(t, ghost, stanza.SubscribePresence)
		testenv.Eventually(t, 10*time.Second, func() bool {
			r := bob.IQ(t, "", stanza.GetIQ, `<query xmlns="jabber:iq:roster"/>`)
			return !strings.Contains(r, `ask="subscribe"`)
		}, "the subscription to a missing author stayed pending")
	})
}

func TestPresenceAwareDelivery(t *testing.T) {
	eachServer(t, func(t *testing.T, s *stack) {
		alice := s.createUser(t, "alice")
		s.xmpp.Register(t, "bob", "bob-pw")
		bob := testenv.DialClient(t, s.srv.C2SAddr, "bob", s.srv.Host, "bob-pw", testenv.ApproveSubscriptions())
		bobJID := "bob@" + s.srv.Host
		bob.Ask(t, s.srv.ComponentDomain, "follow alice")
		// The service asked once for bob's presence; bob granted it, and
		// his server tells us he is online.
		bob.NextPresence(t, 10*time.Second, func(p testenv.Presence) bool {
			return p.Type == "subscribe" && p.From == s.srv.ComponentDomain
		})
		testenv.Eventually(t, 10*time.Second, func() bool { return s.state(t, bobJID).Presence == "on" }, "bob never showed as online")
		st := s.post(t, alice, "bob is online")
		expectPost(t, s, bob, st, "bob is online")

		// Offline: skipped, so nothing piles up in his offline store.
		bob.Close()
		testenv.Eventually(t, 10*time.Second, func() bool { return s.state(t, bobJID).Presence == "off" }, "bob never showed as offline")
		skipped := s.post(t, alice, "while bob is away")
		s.drained(t)

		// Back online: the next post arrives, the skipped one never does.
		bob = testenv.DialClient(t, s.srv.C2SAddr, "bob", s.srv.Host, "bob-pw", testenv.ApproveSubscriptions())
		testenv.Eventually(t, 10*time.Second, func() bool { return s.state(t, bobJID).Presence == "on" }, "bob did not come back online")
		next := s.post(t, alice, "welcome back")
		if m := expectPost(t, s, bob, next, "welcome back"); m.OriginID == skipped.ID {
			t.Fatal("the post made while bob was offline was delivered")
		}

		// After a restart the gateway re-learns presence with probes: a
		// stale "offline" is corrected by bob's server answering the probe.
		if _, err := s.store.SetPresence(context.Background(), bobJID, "", false); err != nil {
			t.Fatal(err)
		}
		if s.state(t, bobJID).Presence != "off" {
			t.Fatal("could not make the state stale")
		}
		s.restartGateway(t)
		testenv.Eventually(t, 10*time.Second, func() bool { return s.state(t, bobJID).Presence == "on" }, "probes after the restart did not find bob online")
	})
}

func TestEtiquette(t *testing.T) {
	eachServer(t, func(t *testing.T, s *stack) {
		alice := s.createUser(t, "alice")
		bob := s.client(t, "bob")
		service := s.srv.ComponentDomain
		aliceJID := s.authorJID("alice")

		info := bob.IQ(t, service, stanza.GetIQ, `<query xmlns="http://jabber.org/protocol/disco#info"/>`)
		for _, want := range []string{`category="component"`, `http://jabber.org/protocol/commands`, `urn:xmpp:ping`, `jabber:iq:version`, `vcard-temp`, `urn:xmpp:sid:0`} {
			if !strings.Contains(info, want) {
				t.Errorf("service disco#info lacks %s: %s", want, info)
			}
		}
		info = bob.IQ(t, aliceJID, stanza.GetIQ, `<query xmlns="http://jabber.org/protocol/disco#info"/>`)
		if !strings.Contains(info, `category="client"`) || !strings.Contains(info, `type="bot"`) || !strings.Contains(info, `name="Alice"`) {
			t.Errorf("author disco#info: %s", info)
		}
		if r := bob.IQ(t, s.authorJID("nobody"), stanza.GetIQ, `<query xmlns="http://jabber.org/protocol/disco#info"/>`); !strings.Contains(r, "item-not-found") {
			t.Errorf("unknown author disco#info: %s", r)
		}
		if r := bob.IQ(t, aliceJID, stanza.GetIQ, `<ping xmlns="urn:xmpp:ping"/>`); !strings.Contains(r, `type="result"`) {
			t.Errorf("ping: %s", r)
		}
		if r := bob.IQ(t, service, stanza.GetIQ, `<query xmlns="jabber:iq:version"/>`); !strings.Contains(r, "<name>Starling</name>") {
			t.Errorf("version: %s", r)
		}
		var vc struct {
			VCard struct {
				FN       string `xml:"FN"`
				Nickname string `xml:"NICKNAME"`
			} `xml:"vcard-temp vCard"`
		}
		r := bob.IQ(t, aliceJID, stanza.GetIQ, `<vCard xmlns="vcard-temp"/>`)
		if err := xml.Unmarshal([]byte(r), &vc); err != nil || vc.VCard.FN != "Alice" || vc.VCard.Nickname != "alice" {
			t.Errorf("vCard %+v (%v): %s", vc, err, r)
		}

		// Errors, chat states and receipts are never answered.
		bob.SendRaw(t, `<message type="error" to="`+service+`"><body>help</body><error type="cancel"><item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></message>`)
		bob.SendRaw(t, `<message type="chat" to="`+aliceJID+`"><composing xmlns="http://jabber.org/protocol/chatstates"/></message>`)
		bob.SendRaw(t, `<message to="`+aliceJID+`"><received xmlns="urn:xmpp:receipts" id="x"/></message>`)
		roundTrip(t, s, bob)
		if extra := bob.Pending(); len(extra) != 0 {
			t.Fatalf("answered what needs no answer: %+v", extra)
		}

		// A follower whose server keeps bouncing deliveries counts as
		// unreachable and is skipped.
		ghost := "ghost@" + s.srv.Host // no such account: the server bounces
		if _, err := s.store.Follow(context.Background(), "alice", ghost); err != nil {
			t.Fatal(err)
		}
		for i := range subscribers.BounceLimit {
			s.post(t, alice, fmt.Sprintf("to a ghost %d", i))
			s.drained(t)
		}
		testenv.Eventually(t, 10*time.Second, func() bool { return !s.state(t, ghost).Unreachable.IsZero() }, "bounces did not mark the ghost unreachable")
	})
}

func TestAdHocCommands(t *testing.T) {
	eachServer(t, func(t *testing.T, s *stack) {
		s.createUser(t, "alice")
		bob := s.client(t, "bob")
		service := s.srv.ComponentDomain
		items := bob.IQ(t, service, stanza.GetIQ, `<query xmlns="http://jabber.org/protocol/disco#items" node="http://jabber.org/protocol/commands"/>`)
		for _, node := range []string{`node="follow"`, `node="unfollow"`, `node="following"`} {
			if !strings.Contains(items, node) {
				t.Errorf("command list lacks %s: %s", node, items)
			}
		}
		form := bob.IQ(t, service, stanza.SetIQ, `<command xmlns="http://jabber.org/protocol/commands" node="follow" action="execute"/>`)
		if !strings.Contains(form, `status="executing"`) || !strings.Contains(form, `var="user"`) {
			t.Fatalf("follow form: %s", form)
		}
		done := bob.IQ(t, service, stanza.SetIQ, `<command xmlns="http://jabber.org/protocol/commands" node="follow" sessionid="s1"><x xmlns="jabber:x:data" type="submit"><field var="user"><value>alice</value></field></x></command>`)
		if !strings.Contains(done, `status="completed"`) || !strings.Contains(done, "You now follow Alice") {
			t.Fatalf("follow completed: %s", done)
		}
		list := bob.IQ(t, service, stanza.SetIQ, `<command xmlns="http://jabber.org/protocol/commands" node="following" action="execute"/>`)
		if !strings.Contains(list, "<value>alice@"+service+"</value>") {
			t.Fatalf("following: %s", list)
		}
		form = bob.IQ(t, service, stanza.SetIQ, `<command xmlns="http://jabber.org/protocol/commands" node="unfollow" action="execute"/>`)
		if !strings.Contains(form, `<option label="alice">`) {
			t.Fatalf("unfollow form: %s", form)
		}
		done = bob.IQ(t, service, stanza.SetIQ, `<command xmlns="http://jabber.org/protocol/commands" node="unfollow" sessionid="s2"><x xmlns="jabber:x:data" type="submit"><field var="user"><value>alice</value></field></x></command>`)
		if !strings.Contains(done, "You no longer follow alice.") {
			t.Fatalf("unfollow completed: %s", done)
		}
		bad := bob.IQ(t, service, stanza.SetIQ, `<command xmlns="http://jabber.org/protocol/commands" node="follow" sessionid="s3"><x xmlns="jabber:x:data" type="submit"><field var="user"><value>nobody</value></field></x></command>`)
		if !strings.Contains(bad, `type="error"`) || !strings.Contains(bad, `There is no user`) {
			t.Fatalf("follow of an unknown user: %s", bad)
		}
	})
}

func TestAbuseLimits(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			s := startStack(t, srv.start(t), map[string]string{
				"STARLING_COMMAND_BURST": "3", "STARLING_COMMAND_RATE": "5", "STARLING_MAX_FOLLOWING": "2",
			})
			for _, u := range []string{"alice", "carol", "dave"} {
				s.createUser(t, u)
			}
			bob := s.client(t, "bob")
			service := s.srv.ComponentDomain
			for range 6 {
				bob.Send(t, service, "help")
			}
			roundTrip(t, s, bob)
			var helps, slow int
			for _, m := range bob.Pending() {
				switch {
				case strings.HasPrefix(m.Body, "Starling on"):
					helps++
				case strings.HasPrefix(m.Body, "Slow down"):
					slow++
				default:
					t.Errorf("unexpected %q", m.Body)
				}
			}
			if helps != 3 || slow != 1 {
				t.Fatalf("a burst of 6 got %d replies and %d slow-downs, want 3 and 1", helps, slow)
			}
			// Quiet until the bucket refills, then heard again.
			// Quiet until the bucket refills, then heard again; the cap on
			// follows holds at two.
			for _, c := range []struct{ body, want string }{
				{"follow alice", "You now follow"},
				{"follow carol", "You now follow"},
				{"follow dave", "the most one address may follow"},
			} {
				if r := heard(t, s, bob, c.body); !strings.Contains(r, c.want) {
					t.Fatalf("%q: %q", c.body, r)
				}
			}
		})
	}
}

// heard sends body until a reply other than "slow down" comes back, and
// returns it.
func heard(t testing.TB, s *stack, c *testenv.Client, body string) string {
	t.Helper()
	var reply string
	testenv.Eventually(t, 10*time.Second, func() bool {
		c.Send(t, s.srv.ComponentDomain, body)
		roundTrip(t, s, c)
		for _, m := range c.Pending() {
			if !strings.HasPrefix(m.Body, "Slow down") {
				reply = m.Body
			}
		}
		return reply != ""
	}, "%q was never heard", body)
	return reply
}

func bare(s string) string {
	j, err := jid.Parse(s)
	if err != nil {
		return s
	}
	return j.Bare().String()
}
