package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"starling.dev/starling/internal/testenv"
)

// until returns the posts c receives, in order, up to and including the
// one with the id last: what arrived before it is all c got of the posts
// published before it (the gateway sends a post's batches only after the
// earlier posts' batches were confirmed by the server, which routes them
// to the client in order, when the test drains the pipeline in between).
func until(t *testing.T, c *testenv.Client, last string) []testenv.Message {
	t.Helper()
	var got []testenv.Message
	for {
		m := c.Next(t, 15*time.Second)
		got = append(got, m)
		if m.OriginID == last {
			return got
		}
	}
}

// askOnly sends body to the JID and returns its reply, failing the test if
// a delivery arrives first (Ask would drop it unseen).
func askOnly(t *testing.T, c *testenv.Client, to, body string) testenv.Message {
	t.Helper()
	c.Send(t, to, body)
	m := c.Next(t, 10*time.Second)
	if m.OriginID != "" || bare(m.From) != bare(to) {
		t.Fatalf("%s: waiting for the answer to %q, got %q from %s (post %s)", c.JID, body, m.Body, m.From, m.OriginID)
	}
	return m
}

// countPost is how many of msgs carry the post id.
func countPost(msgs []testenv.Message, id string) int {
	n := 0
	for _, m := range msgs {
		if m.OriginID == id {
			n++
		}
	}
	return n
}

// TestTrack: tracking by IM and by ad-hoc command on both servers. A post
// reaches trackers who do not follow its author, from the author's JID;
// a JID that follows and tracks two of the post's words gets it once;
// "#tag" matches the hashtag only, a plain word both; a deleted post is
// retracted from its trackers; "off" pauses tracked deliveries too; the
// cap (STARLING_MAX_TRACK) holds; help lists the commands.
func TestTrack(t *testing.T) {
	eachServerWith(t, map[string]string{"STARLING_MAX_TRACK": "3"}, func(t *testing.T, s *stack) {
		alice := s.createUser(t, "alice")
		bob := s.client(t, "bob")     // follows alice and tracks two words
		carol := s.client(t, "carol") // tracks a word, follows nobody
		dave := s.client(t, "dave")   // tracks a hashtag only
		service := s.srv.ComponentDomain

		if r := bob.Ask(t, service, "help"); !strings.Contains(r.Body, "track <word>") || !strings.Contains(r.Body, "post <text>") ||
			!strings.Contains(r.Body, "verify <code>") || !strings.Contains(r.Body, "mentions off") {
			t.Errorf("help: %q", r.Body)
		}
		steps := []struct {
			c          *testenv.Client
			to, body   string
			want, name string
		}{
			{bob, service, "follow alice", "You now follow Alice", "bob"},
			{bob, service, "track GoLang", "You now track “golang”", "bob"},
			{bob, s.authorJID("alice"), "track #rust", "You now track #rust", "bob"},
			{bob, service, "tracking", "You track 2 words: #rust, golang", "bob"},
			{carol, service, "track golang", "You now track “golang”", "carol"},
			{dave, service, "track #golang", "You now track #golang", "dave"},
			{dave, service, "track a b", "Usage: track <word>", "dave"},
			{dave, service, "track a-b", "is not one word", "dave"},
			{dave, service, "track one", "You now track", "dave"},
			{dave, service, "track two", "You now track", "dave"},
			{dave, service, "track three", "You track 3 words, the most one address may track here.", "dave"},
		}
		for _, st := range steps {
			if r := st.c.Ask(t, st.to, st.body); !strings.Contains(r.Body, st.want) {
				t.Errorf("%s: %q to %s: %q, want %q", st.name, st.body, st.to, r.Body, st.want)
			}
		}

		// bob follows alice and tracks both words: one delivery. carol
		// tracks one of them and follows nobody: she gets it from alice.
		// dave tracks #golang, which the plain word is not.
		both := s.post(t, alice, "Golang and #Rust, together at last")
		s.drained(t)
		tagged := s.post(t, alice, "more #golang")
		s.drained(t)
		for _, c := range []struct {
			c    *testenv.Client
			name string
			want int
		}{{bob, "bob", 1}, {carol, "carol", 1}, {dave, "dave", 0}} {
			got := until(t, c.c, tagged.ID)
			if n := countPost(got, both.ID); n != c.want {
				t.Errorf("%s got the post with two tracked words %d times, want %d (%d messages)", c.name, n, c.want, len(got))
			}
			if n := countPost(got, tagged.ID); n != 1 {
				t.Errorf("%s got the #golang post %d times", c.name, n)
			}
			for _, m := range got {
				if bare(m.From) != s.authorJID("alice") || m.Type != "chat" {
					t.Errorf("%s: a delivery from %q of type %q", c.name, m.From, m.Type)
				}
			}
		}

		// Deleting the #golang post retracts it from its trackers too,
		// followers of alice or not.
		if code := s.call(t, "DELETE", "/v1/statuses/"+tagged.ID, alice, nil, nil); code != 204 {
			t.Fatalf("delete: %d", code)
		}
		for _, c := range []*testenv.Client{bob, carol, dave} {
			if m := c.Next(t, 15*time.Second); m.Retracts != tagged.ID || bare(m.From) != s.authorJID("alice") {
				t.Errorf("%s: after the deletion, %q from %s retracting %q; want the retraction of %s", c.JID, m.Body, m.From, m.Retracts, tagged.ID)
			}
		}

		// "off" pauses tracked deliveries; untrack ends them.
		if r := carol.Ask(t, service, "off"); !strings.Contains(r.Body, "Deliveries paused") {
			t.Fatalf("off: %q", r.Body)
		}
		if r := bob.Ask(t, service, "untrack golang"); r.Body != "You no longer track “golang”." {
			t.Fatalf("untrack: %q", r.Body)
		}
		if r := bob.Ask(t, service, "unfollow alice"); !strings.Contains(r.Body, "You no longer follow alice") {
			t.Fatalf("unfollow: %q", r.Body)
		}
		skipped := s.post(t, alice, "golang while carol is away")
		s.drained(t)
		askOnly(t, carol, service, "on")
		back := s.post(t, alice, "golang and #rust again")
		s.drained(t)
		for _, c := range []*testenv.Client{bob, carol} {
			if got := until(t, c, back.ID); countPost(got, skipped.ID) != 0 || len(got) != 1 {
				t.Errorf("%s got %d messages before the last post; the skipped one %d times", c.JID, len(got)-1, countPost(got, skipped.ID))
			}
		}

		// The ad-hoc commands Track and Untrack.
		items := carol.IQ(t, service, stanza.GetIQ, `<query xmlns="http://jabber.org/protocol/disco#items" node="http://jabber.org/protocol/commands"/>`)
		for _, node := range []string{`node="track"`, `node="untrack"`} {
			if !strings.Contains(items, node) {
				t.Errorf("command list lacks %s: %s", node, items)
			}
		}
		form := carol.IQ(t, service, stanza.SetIQ, `<command xmlns="http://jabber.org/protocol/commands" node="track" action="execute"/>`)
		if !strings.Contains(form, `status="executing"`) || !strings.Contains(form, `var="word"`) {
			t.Fatalf("track form: %s", form)
		}
		done := carol.IQ(t, service, stanza.SetIQ, `<command xmlns="http://jabber.org/protocol/commands" node="track" sessionid="t1"><x xmlns="jabber:x:data" type="submit"><field var="word"><value>#Zig</value></field></x></command>`)
		if !strings.Contains(done, `status="completed"`) || !strings.Contains(done, "You now track #zig") {
			t.Fatalf("track completed: %s", done)
		}
		form = carol.IQ(t, service, stanza.SetIQ, `<command xmlns="http://jabber.org/protocol/commands" node="untrack" action="execute"/>`)
		if !strings.Contains(form, `<option label="#zig">`) || !strings.Contains(form, `<option label="golang">`) {
			t.Fatalf("untrack form: %s", form)
		}
		done = carol.IQ(t, service, stanza.SetIQ, `<command xmlns="http://jabber.org/protocol/commands" node="untrack" sessionid="t2"><x xmlns="jabber:x:data" type="submit"><field var="word"><value>golang</value></field></x></command>`)
		if !strings.Contains(done, "You no longer track “golang”.") {
			t.Fatalf("untrack completed: %s", done)
		}
		if r := carol.Ask(t, service, "tracking"); r.Body != "You track 1 word: #zig" {
			t.Errorf("tracking after the forms: %q", r.Body)
		}
	})
}

// jidCode asks the API for a code linking jid to the token's owner.
func (s *stack) jidCode(t testing.TB, user, token, jid string) (code string, expires time.Time) {
	t.Helper()
	var out struct {
		JID       string `json:"jid"`
		Code      string `json:"code"`
		ExpiresAt string `json:"expires_at"`
	}
	if status := s.call(t, "POST", "/v1/users/"+user+"/jids", token, map[string]string{"jid": jid}, &out); status != 201 {
		t.Fatalf("code for %s: status %d", jid, status)
	}
	exp, err := time.Parse(time.RFC3339Nano, out.ExpiresAt)
	if err != nil || out.JID != jid {
		t.Fatalf("code answer %+v: %v", out, err)
	}
	return out.Code, exp
}

var postedRE = regexp.MustCompile(`^Posted as ([a-z0-9_]+): status ([0-9A-Z]{26})\.$`)

// TestPostByIM: a JID posts only once verified; codes are single use,
// expire (STARLING_JID_CODE_TTL, short here) and die after five wrong
// tries; a post by IM is published, delivered and recorded like one made
// through the API, and the reply names its id; mentions reach the
// mentioned author's verified JIDs, once, unless they said "mentions off".
func TestPostByIM(t *testing.T) {
	eachServerWith(t, map[string]string{"STARLING_JID_CODE_TTL": "2s"}, func(t *testing.T, s *stack) {
		aliceToken := s.createUser(t, "alice")
		carolToken := s.createUser(t, "carol")
		bob := s.client(t, "bob")        // alice's own Jabber address
		follower := s.client(t, "frank") // follows alice
		carol := s.client(t, "carol")    // carol's Jabber address, follows nobody
		service := s.srv.ComponentDomain
		bobJID, carolJID := bare(bob.JID.String()), bare(carol.JID.String())
		follower.Ask(t, service, "follow alice")

		// Unverified: refused, nothing posted.
		if r := bob.Ask(t, service, "post not yet"); !strings.Contains(r.Body, "not verified for any author") {
			t.Fatalf("unverified post: %q", r.Body)
		}
		if r := bob.Ask(t, s.authorJID("alice"), "p not yet"); !strings.Contains(r.Body, "not verified to post as alice") {
			t.Fatalf("unverified post to alice's JID: %q", r.Body)
		}
		if p := s.profile(t, "alice"); p.Posts != 0 {
			t.Fatalf("an unverified JID posted: %d posts", p.Posts)
		}

		// Expiry: the right code, too late.
		code, exp := s.jidCode(t, "alice", aliceToken, bobJID)
		testenv.Eventually(t, 10*time.Second, func() bool { return time.Now().After(exp.Add(100 * time.Millisecond)) }, "the code never expired")
		if r := bob.Ask(t, service, "verify "+code); !strings.Contains(r.Body, "That code has expired") {
			t.Fatalf("expired code: %q", r.Body)
		}
		// Brute force: the fifth wrong code voids the code waiting.
		code, _ = s.jidCode(t, "alice", aliceToken, bobJID)
		for i := 4; i > 0; i-- {
			if r := bob.Ask(t, service, "verify WRONG222"); !strings.Contains(r.Body, "That code is not right") {
				t.Fatalf("wrong code: %q", r.Body)
			}
		}
		if r := bob.Ask(t, service, "verify WRONG222"); !strings.Contains(r.Body, "Too many wrong codes") {
			t.Fatalf("fifth wrong code: %q", r.Body)
		}
		if r := bob.Ask(t, service, "verify "+code); !strings.Contains(r.Body, "No code is waiting") {
			t.Fatalf("the right code after the codes were voided: %q", r.Body)
		}
		if p := s.profile(t, "alice"); p.Posts != 0 {
			t.Fatal("a refused JID posted")
		}

		// Verified: single use, and it posts.
		code, _ = s.jidCode(t, "alice", aliceToken, bobJID)
		if r := bob.Ask(t, service, "verify "+strings.ToLower(code)); !strings.Contains(r.Body, "Verified: this address may now post as alice") {
			t.Fatalf("verify: %q", r.Body)
		}
		if r := carol.Ask(t, service, "verify "+code); !strings.Contains(r.Body, "No code is waiting") {
			t.Fatalf("another JID with bob's code: %q", r.Body)
		}
		r := bob.Ask(t, service, "post Hello from my Jabber client, @carol")
		m := postedRE.FindStringSubmatch(r.Body)
		if m == nil || m[1] != "alice" {
			t.Fatalf("post by IM: %q", r.Body)
		}
		byIM := status{ID: m[2], Author: "alice"}
		expectPost(t, s, follower, byIM, "Hello from my Jabber client, @carol")
		var got status
		if code := s.call(t, "GET", "/v1/statuses/"+byIM.ID, "", nil, &got); code != 200 || got.Text != "Hello from my Jabber client, @carol" || got.Author != "alice" {
			t.Fatalf("GET the post by IM: %d %+v", code, got)
		}
		// carol is not verified yet: the mention reached nobody.
		s.drained(t)

		// carol links her JID; alice's next mention reaches it, once, even
		// though it also tracks a word of the post and follows nobody.
		code, _ = s.jidCode(t, "carol", carolToken, carolJID)
		carol.Ask(t, service, "verify "+code)
		carol.Ask(t, service, "track lunch")
		r = bob.Ask(t, s.authorJID("alice"), "p Lunch, @Carol?")
		if m = postedRE.FindStringSubmatch(r.Body); m == nil {
			t.Fatalf("p to alice's JID: %q", r.Body)
		}
		lunch := m[2]
		s.drained(t)
		msgs := until(t, carol, lunch)
		if countPost(msgs, lunch) != 1 || countPost(msgs, byIM.ID) != 0 {
			t.Errorf("carol got the mention of her in a post with her tracked word %d times (want 1), the mention before she was verified %d times",
				countPost(msgs, lunch), countPost(msgs, byIM.ID))
		}
		if r := askOnly(t, carol, service, "mentions off"); !strings.Contains(r.Body, "Mentions are off") {
			t.Fatalf("mentions off: %q", r.Body)
		}
		quiet := s.post(t, aliceToken, "@carol, quietly")
		s.drained(t)
		askOnly(t, carol, service, "mentions on")
		loud := s.post(t, aliceToken, "@carol, loudly")
		s.drained(t)
		if msgs := until(t, carol, loud.ID); len(msgs) != 1 {
			t.Errorf("carol got %d messages before the mention with mentions on (the one while they were off: %d)", len(msgs)-1, countPost(msgs, quiet.ID))
		}

		// Verified for two authors: the service JID asks which; the
		// author's JID says.
		code, _ = s.jidCode(t, "carol", carolToken, bobJID)
		bob.Ask(t, service, "verify "+code)
		if r := bob.Ask(t, service, "post which one?"); !strings.Contains(r.Body, "this address may post as alice or carol") {
			t.Errorf("post with two authors: %q", r.Body)
		}
		if r := bob.Ask(t, s.authorJID("carol"), "post as carol"); !strings.HasPrefix(r.Body, "Posted as carol: ") {
			t.Errorf("post to carol's JID: %q", r.Body)
		}
		// Unlinked: refused again.
		if code := s.call(t, "DELETE", "/v1/users/alice/jids/"+bobJID, aliceToken, nil, nil); code != 204 {
			t.Fatalf("unlink: %d", code)
		}
		if r := bob.Ask(t, s.authorJID("alice"), "post after unlink"); !strings.Contains(r.Body, "not verified to post as alice") {
			t.Errorf("post after unlink: %q", r.Body)
		}
		if p := s.profile(t, "alice"); p.Posts != 4 {
			t.Errorf("alice has %d posts, want 4 (2 by IM, 2 by the API)", p.Posts)
		}
	})
}
