package xmpp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"starling.dev/starling"
)

// fakeGraph is a small in-memory Follows and Authors for the interpreter's
// pure logic; the Redis store has its own tests against a real server.
type fakeGraph struct {
	users   map[string]starling.Profile
	follows map[[2]string]bool // {author, jid}
	posts   map[string][]starling.Post
	paused  map[string]bool
	err     error
	// The track index, JID links and posts by IM (track_test.go,
	// post_test.go).
	tracked    map[string]map[string]bool // jid → keys
	links      map[string]map[string]bool // jid → author → verified
	codes      map[string][2]string       // code → {jid, author}
	noMentions map[string]bool
	recorded   []starling.Post
}

func newFakeGraph() *fakeGraph {
	return &fakeGraph{
		users: map[string]starling.Profile{
			"alice": {Username: "alice", DisplayName: "Alice", Posts: 3},
			"carol": {Username: "carol"},
		},
		follows: map[[2]string]bool{},
		posts:   map[string][]starling.Post{"alice": {{ID: "1", Author: "alice", Text: "latest words", CreatedAt: time.Now().Add(-90 * time.Second)}}},
	}
}

func (g *fakeGraph) Follow(_ context.Context, author, jid string) (bool, error) {
	if g.err != nil {
		return false, g.err
	}
	had := g.follows[[2]string{author, jid}]
	g.follows[[2]string{author, jid}] = true
	return !had, nil
}

func (g *fakeGraph) Unfollow(_ context.Context, author, jid string) (bool, error) {
	had := g.follows[[2]string{author, jid}]
	delete(g.follows, [2]string{author, jid})
	return had, g.err
}

func (g *fakeGraph) Following(_ context.Context, jid string) ([]string, error) {
	var out []string
	for k := range g.follows {
		if k[1] == jid {
			out = append(out, k[0])
		}
	}
	slices.Sort(out)
	return out, g.err
}

func (g *fakeGraph) Profile(_ context.Context, user string) (starling.Profile, error) {
	if g.err != nil {
		return starling.Profile{}, g.err
	}
	p, ok := g.users[user]
	if !ok {
		return starling.Profile{}, starling.ErrUnknownUser
	}
	return p, nil
}

func (g *fakeGraph) RecentPosts(_ context.Context, user string, n int) ([]starling.Post, error) {
	p := g.posts[user]
	return p[:min(n, len(p))], g.err
}

func (g *fakeGraph) FollowingCount(ctx context.Context, jid string) (int64, error) {
	f, err := g.Following(ctx, jid)
	return int64(len(f)), err
}

func (g *fakeGraph) SetPaused(_ context.Context, jid string, paused bool) error {
	if g.paused == nil {
		g.paused = map[string]bool{}
	}
	g.paused[jid] = paused
	return g.err
}

func (g *fakeGraph) SetPresence(context.Context, string, string, bool) (bool, error) {
	return true, nil
}
func (g *fakeGraph) Bounced(context.Context, string) (int64, error)      { return 1, nil }
func (g *fakeGraph) FirstAsk(context.Context, string) (bool, error)      { return true, nil }
func (g *fakeGraph) Granted(context.Context, string, string, bool) error { return nil }
func (g *fakeGraph) ProbeTargets(context.Context, uint64, int) ([][2]string, uint64, error) {
	return nil, 0, nil
}

func TestIMReplies(t *testing.T) {
	const bob = "bob@example.org"
	g := newFakeGraph()
	im := newIM("mb.example", g, 3, slog.New(slog.NewTextHandler(io.Discard, nil)))
	steps := []struct{ author, body, want string }{
		{"", "help", "follow <user> — get their posts here"},
		{"", "following", "You follow nobody yet"},
		{"", "follow alice", "You now follow Alice (alice). Their posts will arrive from alice@mb.example."},
		{"", "follow alice", "You already follow Alice (alice)."},
		{"carol", "sub", "You now follow carol."},
		{"", "following", "You follow 2: alice, carol"},
		{"", "follow", "Usage: follow <user>"},
		{"", "follow a b", "Usage: follow <user>"},
		{"", "help me", "Usage: help (it takes no arguments)."},
		{"", "follow dave", `There is no user "dave" on mb.example.`},
		{"dave", "follow", `There is no user "dave" on mb.example.`},
		{"", "follow alice@other.example", "I only know users of mb.example."},
		{"", "follow a-b", "is not a username here"},
		{"", "last alice", "Alice (alice), 1m ago: latest words"},
		{"carol", "get", "carol has not posted yet."},
		{"", "whois @alice", "Alice (alice@mb.example): 0 followers, 3 posts, the latest 1m ago."},
		{"", "whois carol", "carol (carol@mb.example): 0 followers, 0 posts."},
		{"", "unfollow carol", "You no longer follow carol."},
		{"", "unfollow carol", "You were not following carol."},
		{"", "unfollow dave", `There is no user "dave"`},
		{"", "blah", `I don't know the command "blah". Send “help”`},
		{"alice", "hi there", `or “follow” to follow alice.`},
		{"", "   ", "Send “help” to see what I understand."},
		{"", "off", "Deliveries paused"},
		{"", "STOP", "Deliveries paused"},
		{"", "on", "Deliveries are on"},
		{"", "on now", "Usage: on (it takes no arguments)."},
		{"", "following x", "Usage: following [page]"},
		{"", "following 2", "You follow 1; there are only 1 page(s)."},
	}
	for _, s := range steps {
		got := im.Reply(context.Background(), bob, s.author, s.body)
		if !strings.Contains(got, s.want) {
			t.Errorf("%q to %q: reply %q, want it to contain %q", s.body, s.author, got, s.want)
		}
	}
	if g.paused[bob] {
		t.Error("on did not resume deliveries")
	}
}

func TestIMFollowCapAndPaging(t *testing.T) {
	g := newFakeGraph()
	for i := range 45 {
		name := fmt.Sprintf("a%02d", i)
		g.users[name] = starling.Profile{Username: name}
	}
	im := newIM("mb.example", g, 43, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	for i := range 43 {
		if ans := im.Answer(ctx, "bob@e", "", fmt.Sprintf("follow a%02d", i)); !ans.Followed {
			t.Fatalf("follow %d: %q", i, ans.Text)
		}
	}
	if ans := im.Answer(ctx, "bob@e", "", "follow a44"); ans.Followed || !strings.Contains(ans.Text, "the most one address may follow") {
		t.Fatalf("follow over the cap: %+v", ans)
	}
	cases := map[string]string{
		"following":   "You follow 43 (page 1 of 3): a00, a01,",
		"following 2": "(page 2 of 3): a20,",
		"following 3": "(page 3 of 3): a40, a41, a42",
		"following 4": "there are only 3 page(s)",
	}
	for body, want := range cases {
		if got := im.Reply(ctx, "bob@e", "", body); !strings.Contains(got, want) {
			t.Errorf("%q: %q, want %q", body, got, want)
		}
	}
	if got := im.Reply(ctx, "bob@e", "", "following"); !strings.HasSuffix(got, "send “following 2” for more.") {
		t.Errorf("first page does not point to the next: %q", got)
	}
}

func TestIMStoreFailureStillReplies(t *testing.T) {
	g := newFakeGraph()
	g.err = errors.New("redis: connection refused")
	im := newIM("mb.example", g, 3, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, body := range []string{"follow alice", "unfollow alice", "following", "last alice", "whois alice"} {
		if got := im.Reply(context.Background(), "bob@example.org", "", body); got != sorry {
			t.Errorf("%q with a failing store: %q", body, got)
		}
	}
}
