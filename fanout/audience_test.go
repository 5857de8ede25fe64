package fanout

import (
	"context"
	"errors"
	"slices"
	"testing"

	"starling.dev/starling"
)

// audiencePager is a pager that records the audience it was asked to walk
// and pages the fixed JIDs only (the merge itself is the subscribers
// store's, tested there on Redis).
type audiencePager struct {
	pager
	got []Audience
	all []bool
}

func (p *audiencePager) WalkAudience(_ context.Context, _ string, a Audience, _ string, _ int, all bool, page func([]string, string) error) error {
	p.got = append(p.got, a)
	p.all = append(p.all, all)
	if len(a.JIDs) == 0 {
		return nil
	}
	return page(a.JIDs, a.JIDs[len(a.JIDs)-1])
}

// mentionStore maps users to their verified JIDs, and keeps deleted posts.
type mentionStore struct {
	jids    map[string][]string
	deleted map[string]starling.Post
	asked   [][]string
	err     error
}

func (m *mentionStore) MentionedJIDs(_ context.Context, users []string) ([]string, error) {
	m.asked = append(m.asked, users)
	var out []string
	for _, u := range users {
		out = append(out, m.jids[u]...)
	}
	slices.Sort(out)
	return slices.Compact(out), m.err
}

func (m *mentionStore) DeletedPost(_ context.Context, _, id string) (starling.Post, bool, error) {
	p, ok := m.deleted[id]
	return p, ok, m.err
}

func TestFanAudience(t *testing.T) {
	ctx := context.Background()
	ms := &mentionStore{
		jids: map[string][]string{"bob": {"bob@example.org", "bob@work.example"}, "alice": {"alice@example.org"}},
		deleted: map[string]starling.Post{
			"p1": {ID: "p1", Author: "alice", Text: "#Go with @bob"},
		},
	}
	p := &audiencePager{}
	s := &sink{}
	f := NewFanout(p, s, nil, WithAudience(ms))

	post := starling.Post{ID: "p1", Author: "alice", Text: "#Go with @bob, and @alice herself"}
	if _, err := f.Fan(ctx, post, nil); err != nil {
		t.Fatal(err)
	}
	want := Audience{Keys: []string{"#go", "alice", "and", "bob", "go", "herself", "with"}, JIDs: []string{"bob@example.org", "bob@work.example"}}
	if len(p.got) != 1 || !slices.Equal(p.got[0].Keys, want.Keys) || !slices.Equal(p.got[0].JIDs, want.JIDs) || p.all[0] {
		t.Fatalf("walked %+v (all %v), want %+v", p.got, p.all, want)
	}
	if !slices.Equal(ms.asked[0], []string{"bob"}) {
		t.Errorf("mentions looked up for %q: the author's own mention is no reason to deliver", ms.asked[0])
	}
	if len(s.got) != 1 || !slices.Equal(s.got[0].To, want.JIDs) || s.got[0].Page != 0 {
		t.Errorf("batches %+v", s.got)
	}

	// The retraction reaches the deleted post's audience, everyone of it.
	if _, err := f.Fan(ctx, starling.Post{ID: "r1", Author: "alice", Retracts: "p1"}, nil); err != nil {
		t.Fatal(err)
	}
	if len(p.got) != 2 || !slices.Equal(p.got[1].Keys, []string{"#go", "bob", "go", "with"}) || !p.all[1] {
		t.Fatalf("retraction walked %+v (all %v)", p.got[1:], p.all[1:])
	}
	// A retraction whose post is not known any more reaches the followers.
	if _, err := f.Fan(ctx, starling.Post{ID: "r2", Author: "alice", Retracts: "gone"}, nil); err != nil {
		t.Fatal(err)
	}
	if a := p.got[2]; len(a.Keys) != 0 || len(a.JIDs) != 0 {
		t.Errorf("retraction of an unknown post walked %+v", a)
	}

	// A store failure fails the fanout, so that the post is retried.
	ms.err = errors.New("redis: down")
	if _, err := f.Fan(ctx, post, nil); err == nil {
		t.Error("a failed mention lookup did not fail the fanout")
	}
	// A pager that cannot walk an audience is a wiring mistake, not a
	// silent loss of trackers.
	if _, err := NewFanout(&pager{}, s, nil, WithAudience(ms)).Fan(ctx, post, nil); !errors.Is(err, errNoAudiencePager) {
		t.Errorf("plain pager with WithAudience: %v", err)
	}
}
