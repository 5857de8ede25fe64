package xmpp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"starling.dev/starling"
)

// fakeRefusal is a refused code as the store reports it.
type fakeRefusal struct{ reason string }

func (f fakeRefusal) Error() string                { return "refused: " + f.reason }
func (f fakeRefusal) VerifyRefused() (string, int) { return f.reason, 2 }

func (g *fakeGraph) VerifyJID(_ context.Context, jid, code string, _ time.Time) (string, bool, error) {
	if g.err != nil {
		return "", false, g.err
	}
	c, ok := g.codes[code]
	switch {
	case strings.HasPrefix(code, "!"):
		return "", false, fakeRefusal{code[1:]}
	case !ok || c[0] != jid:
		return "", false, fakeRefusal{"none"}
	}
	if g.links == nil {
		g.links = map[string]map[string]bool{}
	}
	if g.links[jid] == nil {
		g.links[jid] = map[string]bool{}
	}
	already := g.links[jid][c[1]]
	g.links[jid][c[1]] = true
	return c[1], already, nil
}

func (g *fakeGraph) VerifiedAuthors(_ context.Context, jid string) ([]string, error) {
	var out []string
	for a, ok := range g.links[jid] {
		if ok {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out, g.err
}

func (g *fakeGraph) RecordPost(_ context.Context, p starling.Post) error {
	g.recorded = append(g.recorded, p)
	return g.err
}

// fakePublisher keeps what it is given, or fails with err.
type fakePublisher struct {
	posts []starling.Post
	err   error
}

func (f *fakePublisher) PublishPost(_ context.Context, p starling.Post) (bool, error) {
	if f.err != nil {
		return false, f.err
	}
	f.posts = append(f.posts, p)
	return false, nil
}

// postingIM is an interpreter that may post through pub.
func postingIM(g *fakeGraph, pub Publisher, cfg PostConfig) *IM {
	c := &Component{im: newIM("mb.example", g, 3, slog.New(slog.NewTextHandler(io.Discard, nil)))}
	WithPosting(pub, cfg)(c)
	return c.im
}

func TestIMVerifyAndPost(t *testing.T) {
	const bob, eve = "bob@example.org", "eve@example.org"
	g := newFakeGraph()
	g.codes = map[string][2]string{"CODE1": {bob, "alice"}, "CODE2": {bob, "carol"}}
	pub := &fakePublisher{}
	im := postingIM(g, pub, PostConfig{MaxPostChars: 20, Burst: 3, Rate: 0.001})
	ctx := context.Background()
	steps := []struct{ from, author, body, want string }{
		{bob, "", "post hello", "Not posted: this address is not verified for any author."},
		{bob, "alice", "p hello", "Not posted: this address is not verified to post as alice."},
		{bob, "", "verify", "Usage: verify <code>"},
		{bob, "", "verify nope", "No code is waiting for this address."},
		{bob, "", "verify !wrong", "That code is not right. 2 tries left"},
		{bob, "", "verify !expired", "That code has expired."},
		{bob, "", "verify !burned", "Too many wrong codes"},
		{eve, "", "verify CODE1", "No code is waiting"}, // another JID's code
		{bob, "", "verify CODE1", "Verified: this address may now post as alice. Send “post <text>” here or to alice@mb.example."},
		{bob, "", "verify CODE1", "This address is already verified for alice."},
		{bob, "", "post", "Usage: post <text>"},
		{bob, "", "post   two\n lines  ", "Posted as alice: status "},
		{bob, "carol", "post hi", "not verified to post as carol"},
		{bob, "", "post this text is longer than twenty", "Not posted: "},
		{bob, "", "verify CODE2", "may now post as carol"},
		{bob, "", "post hi", "this address may post as alice or carol; send “post <text>” to the author's own address: alice@mb.example or carol@mb.example."},
		{bob, "carol", "P hi carol", "Posted as carol: status "},
		{bob, "alice", "post third", "Posted as alice"},
		{bob, "alice", "post fourth", "Not posted: too many posts at once."},
		{eve, "alice", "post as alice", "not verified to post as alice"},
	}
	idRE := regexp.MustCompile(`status ([0-9A-Z]{26})\.$`)
	var ids []string
	for _, s := range steps {
		got := im.Reply(ctx, s.from, s.author, s.body)
		if !strings.Contains(got, s.want) {
			t.Errorf("%q from %s to %q: reply %q, want it to contain %q", s.body, s.from, s.author, got, s.want)
		}
		if m := idRE.FindStringSubmatch(got); m != nil {
			ids = append(ids, m[1])
		}
	}
	if len(pub.posts) != 3 || len(ids) != 3 {
		t.Fatalf("%d posts published, %d ids in replies; want 3", len(pub.posts), len(ids))
	}
	first := pub.posts[0]
	if first.ID != ids[0] || first.Author != "alice" || first.AuthorName != "Alice" || first.Text != "two\n lines" || first.CreatedAt.IsZero() {
		t.Errorf("first post %+v (reply named %s)", first, ids[0])
	}
	if pub.posts[1].Author != "carol" || pub.posts[1].Text != "hi carol" {
		t.Errorf("second post %+v", pub.posts[1])
	}
	if len(g.recorded) != 3 || g.recorded[2].ID != pub.posts[2].ID {
		t.Errorf("recorded %+v", g.recorded)
	}
}

func TestIMPostRefusals(t *testing.T) {
	const bob = "bob@example.org"
	g := newFakeGraph()
	g.links = map[string]map[string]bool{bob: {"alice": true}}
	ctx := context.Background()

	// Not enabled: nothing is published, and the reply says so.
	off := newIM("mb.example", g, 3, slog.New(slog.DiscardHandler))
	if got := off.Reply(ctx, bob, "", "post hello"); got != "Posting by IM is not enabled here." {
		t.Errorf("posting disabled: %q", got)
	}

	// JetStream refuses: the author is told, nothing is recorded.
	pub := &fakePublisher{err: errors.New("nats: no responders")}
	im := postingIM(g, pub, PostConfig{})
	if got := im.Reply(ctx, bob, "", "post hello"); !strings.Contains(got, "could not be stored right now") {
		t.Errorf("publish failure: %q", got)
	}
	if got := im.Reply(ctx, bob, "", "post bad \x01 byte"); !strings.Contains(got, "Not posted: ") {
		t.Errorf("invalid text: %q", got)
	}
	if len(g.recorded) != 0 {
		t.Errorf("recorded %+v", g.recorded)
	}
}
