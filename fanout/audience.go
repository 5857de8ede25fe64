package fanout

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"starling.dev/starling"
)

// Audience is who gets a post besides the author's followers.
type Audience struct {
	// Keys are the post's match keys (MatchKeys): whoever tracks one of
	// them gets the post.
	Keys []string
	// JIDs are bare JIDs that get it too (the mentioned users' verified
	// JIDs), sorted and without repeats.
	JIDs []string
}

// AudiencePager is a FollowerPager that can walk a post's audience merged
// with the followers.
type AudiencePager interface {
	FollowerPager
	// WalkAudience is WalkFollowers over the author's followers, the
	// trackers of a.Keys and a.JIDs together: in JID order, each JID once
	// however many reasons it has, the same pages, cursors and filter.
	WalkAudience(ctx context.Context, author string, a Audience, after string, count int, all bool, page func(jids []string, last string) error) error
}

// MentionStore finds whom a post's mentions reach, and the text of a post
// whose retraction is being fanned out.
type MentionStore interface {
	// MentionedJIDs returns the bare JIDs verified for any of the users
	// that take mentions, sorted, without repeats.
	MentionedJIDs(ctx context.Context, users []string) ([]string, error)
	// DeletedPost returns the author's post id as it was when its deletion
	// began, or false if it is not known (any more).
	DeletedPost(ctx context.Context, author, id string) (starling.Post, bool, error)
}

// WithAudience makes the fanout stage deliver each post to its audience
// too: the trackers of its words and the verified JIDs of the users it
// mentions (not the author's own), merged into the same pages, batches and
// lanes as the followers, one delivery per JID. The stage's FollowerPager
// must be an AudiencePager. A retraction reaches the audience of the post
// it retracts, found through mentions.DeletedPost.
func WithAudience(mentions MentionStore) Option {
	return func(o *options) { o.mentions = mentions }
}

// errNoAudiencePager is the error of a stage given WithAudience over a
// pager that cannot walk an audience: a wiring mistake.
var errNoAudiencePager = errors.New("fanout: WithAudience needs an AudiencePager")

// audience finds the post's audience: for a retraction, that of the post
// it retracts.
func (f *Fanout) audience(ctx context.Context, post starling.Post) (Audience, error) {
	if f.opt.mentions == nil {
		return Audience{}, nil
	}
	if post.Retracts != "" {
		orig, ok, err := f.opt.mentions.DeletedPost(ctx, post.Author, post.Retracts)
		if err != nil || !ok {
			return Audience{}, err
		}
		post = orig
	}
	a := Audience{Keys: MatchKeys(post.Text)}
	users := slices.DeleteFunc(Mentions(post.Text), func(u string) bool { return u == post.Author })
	if len(users) > 0 {
		jids, err := f.opt.mentions.MentionedJIDs(ctx, users)
		if err != nil {
			return Audience{}, fmt.Errorf("fanout: mentions of post %s: %w", post.ID, err)
		}
		a.JIDs = jids
	}
	return a, nil
}
