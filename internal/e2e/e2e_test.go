package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"starling.dev/starling"
	"starling.dev/starling/fanout"
	"starling.dev/starling/internal/testenv"
)

// expectPost waits for the delivery of st to c and checks its shape.
func expectPost(t *testing.T, s *stack, c *testenv.Client, st status, wantBody string) testenv.Message {
	t.Helper()
	m := c.Next(t, 15*time.Second)
	if got := jid.MustParse(m.From).String(); got != s.authorJID(st.Author) {
		t.Fatalf("delivery from %q, want %q (body %q)", got, s.authorJID(st.Author), m.Body)
	}
	if m.Type != "chat" {
		t.Errorf("delivery type %q, want chat", m.Type)
	}
	if m.Body != wantBody {
		t.Errorf("delivery body %q, want %q", m.Body, wantBody)
	}
	if m.OriginID != st.ID {
		t.Errorf("origin-id %q, want the post id %q", m.OriginID, st.ID)
	}
	return m
}

func TestFollowPostUnfollow(t *testing.T) {
	eachServer(t, func(t *testing.T, s *stack) {
		alice := s.createUser(t, "alice")
		carol := s.createUser(t, "carol")
		bob := s.client(t, "bob")
		service := s.srv.ComponentDomain

		if r := bob.Ask(t, service, "follow alice"); !strings.Contains(r.Body, "You now follow Alice (alice)") {
			t.Fatalf("follow reply %q", r.Body)
		}
		var profile struct {
			Followers int64 `json:"followers"`
			Posts     int64 `json:"posts"`
			JID       string
		}
		s.call(t, "GET", "/v1/users/alice", "", nil, &profile)
		if profile.Followers != 1 || profile.JID != s.authorJID("alice") {
			t.Fatalf("profile after follow: %+v", profile)
		}

		st := s.post(t, alice, "hello, XMPP <world> & friends")
		// The default payload (STARLING_PAYLOAD=minimal): body and
		// origin-id (expectPost checks both), no Atom entry.
		if m := expectPost(t, s, bob, st, "hello, XMPP <world> & friends"); m.Atom != nil {
			t.Errorf("the default delivery carries an Atom entry: %+v", m.Atom)
		}
		s.call(t, "GET", "/v1/users/alice", "", nil, &profile)
		if profile.Posts != 1 {
			t.Fatalf("post count %d, want 1", profile.Posts)
		}

		// Unfollow on the author's own JID: the author is the default target.
		if r := bob.Ask(t, s.authorJID("alice"), "UNSUB"); r.Body != "You no longer follow alice." {
			t.Fatalf("unfollow reply %q", r.Body)
		}
		if r := bob.Ask(t, service, "sub @carol"); !strings.Contains(r.Body, "You now follow Carol") {
			t.Fatalf("follow carol reply %q", r.Body)
		}
		// alice's post is fully processed before carol posts; had it been
		// delivered, the server would have handed it to bob before carol's.
		gone := s.post(t, alice, "nobody should get this")
		s.drained(t)
		st = s.post(t, carol, "carol here")
		m := expectPost(t, s, bob, st, "carol here")
		if m.OriginID == gone.ID {
			t.Fatal("an unfollower received the post")
		}
		for _, p := range bob.Pending() {
			if p.OriginID == gone.ID {
				t.Fatal("an unfollower received the post")
			}
		}
	})
}

func TestCommandsReplyExactlyOnce(t *testing.T) {
	eachServer(t, func(t *testing.T, s *stack) {
		s.createUser(t, "alice")
		bob := s.client(t, "bob")
		service := s.srv.ComponentDomain
		cases := []struct{ to, body, want string }{
			{service, "help", "follow <user>"},
			{service, "frobnicate", `I don't know the command "frobnicate"`},
			{service, "follow", "Usage: follow <user>"},
			{service, "follow nosuchuser", `There is no user "nosuchuser"`},
			{service, "follow alice@elsewhere.example", "I only know users of " + service},
			{service, "Follow ALICE@" + service, "You now follow Alice (alice)"},
			{service, "sub alice", "You already follow Alice (alice)"},
			{s.authorJID("alice"), "hello?", `or “follow” to follow alice`},
			{s.authorJID("nosuchuser"), "follow", `There is no user "nosuchuser"`},
			{service, "leave alice", "You no longer follow alice."},
			{service, "unfollow alice", "You were not following alice."},
		}
		for _, c := range cases {
			r := bob.Ask(t, c.to, c.body)
			if !strings.Contains(r.Body, c.want) {
				t.Errorf("%q to %s: reply %q, want it to contain %q", c.body, c.to, r.Body, c.want)
			}
			if got := jid.MustParse(r.From).Bare().String(); got != jid.MustParse(c.to).String() {
				t.Errorf("%q to %s: reply from %s", c.body, c.to, got)
			}
		}
		// Exactly one reply each: a last round trip flushes anything extra.
		bob.Ask(t, service, "help")
		if extra := bob.Pending(); len(extra) != 0 {
			t.Fatalf("extra replies: %+v", extra)
		}
	})
}

// TestBadInputKeepsStreamUp sends everything that could break the component
// stream and shows the next post is still delivered.
func TestBadInputKeepsStreamUp(t *testing.T) {
	eachServer(t, func(t *testing.T, s *stack) {
		alice := s.createUser(t, "alice")
		bob := s.client(t, "bob")
		bob.Ask(t, s.srv.ComponentDomain, "follow alice")

		for _, text := range []string{"bell\a", "nul\x00byte", "esc\x1b[31m", "\uFFFE"} {
			if code := s.call(t, "POST", "/v1/statuses", alice, map[string]string{"text": text}, nil); code != 422 {
				t.Errorf("post %q: status %d, want 422", text, code)
			}
		}
		tricky := []string{
			`</body></message><message to="bob@localhost" from="x@microblog.localhost"><body>pwned`,
			"]]> &amp; &lt; 'single' \"double\" \r\n\tcr-lf-tab",
			"emoji 🐦 and RTL \u202e text",
		}
		// Line ends are normalised to LF on acceptance, as XML parsers in the
		// path would do anyway; what the API returns is what arrives.
		lf := strings.NewReplacer("\r\n", "\n", "\r", "\n")
		for _, text := range tricky {
			st := s.post(t, alice, text)
			if st.Text != lf.Replace(text) {
				t.Errorf("accepted text %q, want %q", st.Text, lf.Replace(text))
			}
			expectPost(t, s, bob, st, lf.Replace(text))
		}

		// A post that bypassed the API (an old producer, a bug) with characters
		// XML cannot carry: the encoder drops them instead of breaking the stream.
		raw := starling.Post{ID: "01JBADPOSTBYPASSINGTHEAPI0", Author: "alice", Text: "bad\x00\x01 \x1btext\uFFFF", CreatedAt: time.Now()}
		data, _ := json.Marshal(raw)
		if _, err := s.js.Publish(context.Background(), fanout.PostSubject(raw.Author), data); err != nil {
			t.Fatal(err)
		}
		expectPost(t, s, bob, status{ID: raw.ID, Author: "alice"}, "bad text")

		st := s.post(t, alice, "still here")
		expectPost(t, s, bob, st, "still here")
		if !s.componentConnected() {
			t.Fatal("the component stream went down")
		}
		if strings.Contains(s.xmpp.Log(), "not-well-formed") {
			t.Fatalf("%s saw ill-formed XML:\n%s", s.srv.Name, s.xmpp.Log())
		}
	})
}

// TestServerRestart restarts the XMPP server between two posts: the second
// waits in JetStream and arrives once the component has reconnected.
func TestServerRestart(t *testing.T) {
	eachServer(t, func(t *testing.T, s *stack) {
		alice := s.createUser(t, "alice")
		bob := s.client(t, "bob")
		bob.Ask(t, s.srv.ComponentDomain, "follow alice")
		first := s.post(t, alice, "before the restart")
		expectPost(t, s, bob, first, "before the restart")

		s.xmpp.Restart(t)
		// bob logs in again at once: the component reconnects with backoff,
		// so the post reaches him live. (Delivered while his login is
		// halfway done, ejabberd can file it offline after it flushed his
		// offline store, a race of the server's own.)
		bob = testenv.DialClient(t, s.srv.C2SAddr, "bob", s.srv.Host, "bob-pw")
		second := s.post(t, alice, "after the restart")
		testenv.Eventually(t, 20*time.Second, s.componentConnected, "the component did not reconnect")
		expectPost(t, s, bob, second, "after the restart")
	})
}

// TestDeleteRetracts deletes a post through the API: followers get an
// XEP-0424 retraction that names the delivery's origin-id.
func TestDeleteRetracts(t *testing.T) {
	eachServer(t, func(t *testing.T, s *stack) {
		alice := s.createUser(t, "alice")
		bob := s.client(t, "bob")
		bob.Ask(t, s.srv.ComponentDomain, "follow alice")
		st := s.post(t, alice, "a post to regret")
		m := expectPost(t, s, bob, st, "a post to regret")
		if code := s.call(t, "DELETE", "/v1/statuses/"+st.ID, alice, nil, nil); code != 204 {
			t.Fatalf("delete: status %d", code)
		}
		r := bob.Next(t, 15*time.Second)
		if r.Retracts != m.OriginID || bare(r.From) != s.authorJID("alice") {
			t.Fatalf("retraction %+v, want one of %s from alice", r, m.OriginID)
		}
		if code := s.call(t, "GET", "/v1/statuses/"+st.ID, "", nil, nil); code != 404 {
			t.Fatalf("deleted post: status %d", code)
		}
	})
}
