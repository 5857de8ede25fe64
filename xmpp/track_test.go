package xmpp

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

func (g *fakeGraph) Track(_ context.Context, jid, key string, limit int) (bool, bool, error) {
	if g.err != nil {
		return false, false, g.err
	}
	if g.tracked == nil {
		g.tracked = map[string]map[string]bool{}
	}
	if g.tracked[jid] == nil {
		g.tracked[jid] = map[string]bool{}
	}
	switch {
	case g.tracked[jid][key]:
		return false, false, nil
	case len(g.tracked[jid]) >= limit:
		return false, true, nil
	}
	g.tracked[jid][key] = true
	return true, false, nil
}

func (g *fakeGraph) Untrack(_ context.Context, jid, key string) (bool, error) {
	had := g.tracked[jid][key]
	delete(g.tracked[jid], key)
	return had, g.err
}

func (g *fakeGraph) Tracked(_ context.Context, jid string) ([]string, error) {
	var keys []string
	for k := range g.tracked[jid] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, g.err
}

func (g *fakeGraph) SetMentions(_ context.Context, jid string, on bool) error {
	if g.noMentions == nil {
		g.noMentions = map[string]bool{}
	}
	g.noMentions[jid] = !on
	return g.err
}

func (g *fakeGraph) MentionsOn(_ context.Context, jid string) (bool, error) {
	return !g.noMentions[jid], g.err
}

func TestIMTrack(t *testing.T) {
	const bob = "bob@example.org"
	g := newFakeGraph()
	im := newIM("mb.example", g, 3, slog.New(slog.NewTextHandler(io.Discard, nil)))
	im.maxTrack = 3
	steps := []struct{ author, body, want string }{
		{"", "tracking", "You track no words."},
		{"", "track Go", "You now track “go”: every post containing it (or #go) will arrive here"},
		{"", "TRACK go", "You already track “go”."},
		{"", "track #Rust", "You now track #rust: every post with that hashtag"},
		{"alice", "track Straße", "You now track “strasse”"}, // to an author's JID too
		{"", "track more", "You track 3 words, the most one address may track here."},
		{"", "tracking", "You track 3 words: #rust, go, strasse"},
		{"", "track foo-bar", "“foo-bar” is not one word"},
		{"", "track #", "“#” is not one word"},
		{"", "track a b", "Usage: track <word>"},
		{"", "track", "Usage: track <word>"},
		{"", "untrack GO", "You no longer track “go”."},
		{"", "untrack go", "You were not tracking “go”."},
		{"", "untrack", "Usage: untrack <word>"},
		{"", "tracking", "You track 2 words: #rust, strasse"},
		{"", "tracking x", "Usage: tracking (it takes no arguments)."},
		{"", "mentions", "Mentions are on"},
		{"", "mentions off", "Mentions are off"},
		{"", "MENTIONS", "Mentions are off"},
		{"", "mentions On", "Mentions are on"},
		{"", "mentions maybe", "Usage: mentions on, or mentions off."},
		{"", "mentions on off", "Usage: mentions on, or mentions off."},
	}
	for _, s := range steps {
		if got := im.Reply(context.Background(), bob, s.author, s.body); !strings.Contains(got, s.want) {
			t.Errorf("%q to %q: reply %q, want it to contain %q", s.body, s.author, got, s.want)
		}
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	im := newIM("mb.example", newFakeGraph(), 3, slog.New(slog.DiscardHandler))
	help := im.Reply(context.Background(), "bob@example.org", "", "help")
	for word, v := range verbs {
		if v == VerbHelp || len(word) == 1 {
			continue // "?" and "p" are aliases, named beside their verbs
		}
		if !strings.Contains(help, word) {
			t.Errorf("help does not name %q", word)
		}
	}
}
