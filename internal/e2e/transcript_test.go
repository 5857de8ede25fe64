package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"starling.dev/starling/internal/testenv"
)

// TestIMTranscript records, against Prosody, what Jabber clients exchange
// with the gateway while one tracks a word, one verifies its JID and posts
// by IM, and one gets mentioned: every message body sent and received,
// with the addresses and ids. It runs when STARLING_TRANSCRIPT is set (to
// a file to write the transcript to, or "-" for the test log only):
//
//	STARLING_TRANSCRIPT=- go test -v -run TestIMTranscript ./internal/e2e
func TestIMTranscript(t *testing.T) {
	out := os.Getenv("STARLING_TRANSCRIPT")
	if out == "" {
		t.Skip("set STARLING_TRANSCRIPT (a file, or -) to record the transcript")
	}
	s := startStack(t, testenv.StartProsody(t))
	aliceToken := s.createUser(t, "alice")
	carolToken := s.createUser(t, "carol")
	bob, carol, dave := s.client(t, "bob"), s.client(t, "carol"), s.client(t, "dave")
	service := s.srv.ComponentDomain
	start := time.Now()
	var lines []string
	note := func(format string, args ...any) {
		lines = append(lines, fmt.Sprintf("%6.3fs  ", time.Since(start).Seconds())+fmt.Sprintf(format, args...))
	}
	ask := func(c *testenv.Client, to, body string) testenv.Message {
		note("%s → %s  <body>%s</body>", bare(c.JID.String()), to, body)
		m := askOnly(t, c, to, body)
		note("%s ← %s  <body>%s</body>", bare(c.JID.String()), bare(m.From), m.Body)
		return m
	}
	receive := func(c *testenv.Client) testenv.Message {
		m := c.Next(t, 15*time.Second)
		note("%s ← %s  type=%s id=%s origin-id=%s  <body>%s</body>", bare(c.JID.String()), bare(m.From), m.Type, m.ID, m.OriginID, m.Body)
		return m
	}
	link := func(user, token string, c *testenv.Client) {
		jid := bare(c.JID.String())
		code, exp := s.jidCode(t, user, token, jid)
		note("HTTP POST /v1/users/%s/jids {\"jid\":%q} → 201 {\"code\":%q,\"expires_at\":%q}", user, jid, code, exp.Format(time.RFC3339))
		if r := ask(c, service, "verify "+code); !strings.HasPrefix(r.Body, "Verified") {
			t.Fatalf("verify: %q", r.Body)
		}
	}

	ask(dave, service, "track golang")
	ask(dave, service, "tracking")
	ask(bob, service, "post Hello?")
	link("alice", aliceToken, bob)
	link("carol", carolToken, carol)
	r := ask(bob, service, "post Golang 1.26 is out. Thoughts, @carol?")
	m := postedRE.FindStringSubmatch(r.Body)
	if m == nil {
		t.Fatalf("post by IM: %q", r.Body)
	}
	if d := receive(dave); d.OriginID != m[2] || bare(d.From) != s.authorJID("alice") {
		t.Fatalf("dave's delivery: %+v", d)
	}
	if c := receive(carol); c.OriginID != m[2] || bare(c.From) != s.authorJID("alice") {
		t.Fatalf("carol's delivery: %+v", c)
	}
	ask(carol, s.authorJID("carol"), "p Not bad, @alice — #golang it is.")
	if d := receive(dave); !strings.Contains(d.Body, "#golang") {
		t.Fatalf("dave's second delivery: %+v", d)
	}
	if b := receive(bob); !strings.Contains(b.Body, "@alice") {
		t.Fatalf("bob's mention: %+v", b)
	}
	var got status
	s.call(t, "GET", "/v1/statuses/"+m[2], "", nil, &got)
	note("HTTP GET /v1/statuses/%s → 200 {\"author\":%q,\"text\":%q}", m[2], got.Author, got.Text)

	transcript := strings.Join(lines, "\n") + "\n"
	t.Log("\n" + transcript)
	if out != "-" {
		if err := os.WriteFile(out, []byte(transcript), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
