package xmpp

import (
	"context"
	"time"

	"starling.dev/starling"
)

// Follows is the social graph as the component needs it.
type Follows interface {
	Follow(ctx context.Context, author, jid string) (bool, error)
	Unfollow(ctx context.Context, author, jid string) (bool, error)
	Following(ctx context.Context, jid string) ([]string, error)
	FollowingCount(ctx context.Context, jid string) (int64, error)
}

// Authors reads authors' public records.
type Authors interface {
	Profile(ctx context.Context, username string) (starling.Profile, error)
	RecentPosts(ctx context.Context, username string, n int) ([]starling.Post, error)
}

// Presences keeps what the component learns of followers' availability.
type Presences interface {
	// SetPresence records a resource coming or going; it reports whether
	// the JID has any resource online.
	SetPresence(ctx context.Context, jid, resource string, available bool) (bool, error)
	// Bounced counts a delivery that came back as an error.
	Bounced(ctx context.Context, jid string) (int64, error)
	// SetPaused records "off" (true) or "on" (false).
	SetPaused(ctx context.Context, jid string, paused bool) error
}

// Subscriptions remembers presence subscriptions followers granted us.
type Subscriptions interface {
	// FirstAsk reports whether we never asked the JID before (and now have).
	FirstAsk(ctx context.Context, jid string) (bool, error)
	// Granted records that jid granted (or revoked) our JID ours its presence.
	Granted(ctx context.Context, jid, ours string, granted bool) error
	// ProbeTargets pages through the grants: {their JID, our JID} pairs.
	ProbeTargets(ctx context.Context, cursor uint64, count int) ([][2]string, uint64, error)
}

// ProbeLeaser is what a Store implements when several gateways share it:
// the presence probes after a (re)connect are sent by one of them only (the
// answers are recorded in the shared store whichever connection they reach).
type ProbeLeaser interface {
	// TakeProbeLease reports whether holder got the lease, which nobody
	// else can get for ttl or until holder releases it.
	TakeProbeLease(ctx context.Context, holder string, ttl time.Duration) (bool, error)
	// ReleaseProbeLease gives the lease up if holder has it.
	ReleaseProbeLease(ctx context.Context, holder string) error
}

// Tracks is the track index as the IM commands need it: keys are
// fanout.TrackKey's.
type Tracks interface {
	// Track makes jid track key unless it tracks limit keys already
	// (full); added is false when it tracked key before.
	Track(ctx context.Context, jid, key string, limit int) (added, full bool, err error)
	// Untrack reports whether jid tracked key.
	Untrack(ctx context.Context, jid, key string) (bool, error)
	// Tracked returns the keys jid tracks, sorted.
	Tracked(ctx context.Context, jid string) ([]string, error)
}

// Links are the JIDs authors linked to their accounts, as the IM commands
// verify <code>, post and mentions need them.
type Links interface {
	// VerifyJID checks a code jid sent and returns the author it is now
	// verified for (already: it was, by this code). A refused code is an
	// error with a method VerifyRefused() (reason string, left int), the
	// reason "none", "wrong" (left: tries before the codes are void),
	// "expired" or "burned".
	VerifyJID(ctx context.Context, jid, code string, now time.Time) (user string, already bool, err error)
	// VerifiedAuthors returns the authors jid is verified for, sorted.
	VerifiedAuthors(ctx context.Context, jid string) ([]string, error)
	// SetMentions and MentionsOn keep whether jid takes the posts that
	// mention an author it is verified for.
	SetMentions(ctx context.Context, jid string, on bool) error
	MentionsOn(ctx context.Context, jid string) (bool, error)
}

// PostRecorder keeps a post published by IM in its author's history.
type PostRecorder interface {
	RecordPost(ctx context.Context, p starling.Post) error
}

// Store is everything the component keeps in its store.
type Store interface {
	Follows
	Authors
	Presences
	Subscriptions
	Tracks
	Links
	PostRecorder
}
