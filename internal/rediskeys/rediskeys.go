// Package rediskeys is the one description of Starling's Redis key layout.
// The accounts and subscribers stores build every key through a Layout, and
// Families lists each key family with its meaning; docs/ARCHITECTURE.md has
// the same table, and a test keeps the two equal.
//
// Keys of one author share the hash tag {<username>}, keys of one follower
// the tag {<bare jid>} and the trackers of one word the tag {<word>}, so
// Redis Cluster keeps each group on one slot and the scripts over a group
// run there. Nothing writes two families of different tags in one command
// or script.
package rediskeys

import "strconv"

// Layout builds keys under a prefix (empty means none).
type Layout struct {
	Prefix string
}

// Family is one kind of key: its pattern as written in the docs, the Redis
// type, the package that owns it, and what it holds.
type Family struct {
	Pattern, Type, Owner, Holds string
}

// Families are every key family, in the order of the docs' table.
var Families = []Family{
	{"u:{<user>}", "hash", "accounts", "profile: display_name, bio, created_at, token_hash, posts (count)"},
	{"t:<sha256 hex>", "string", "accounts", "username owning that token hash"},
	{"p:{<user>}", "hash", "accounts", "post id → post JSON, the author's recent history"},
	{"l:{<user>}", "sorted set", "accounts", "the history's post ids, all scored 0 (ULIDs sort by time)"},
	{"a:<post id>", "string", "accounts", "author of a post, for GET /v1/statuses/{id}"},
	{"i:{<user>}:<key>", "string", "accounts", "idempotency record of one POST /v1/statuses (post JSON, 24 h)"},
	{"d:{<user>}:<key>", "string", "accounts", "marks the post of an idempotency record as published (24 h)"},
	{"x:{<user>}:<post id>", "string", "accounts", "retraction reserved for deleting that post (24 h)"},
	{"dp:{<user>}:<post id>", "string", "accounts", "JSON of a post whose deletion began, so that its retraction reaches the post's trackers and mentioned JIDs (24 h)"},
	{"j:{<user>}", "set", "accounts", "bare JIDs the author linked or asked a code for (their state is in jl:)"},
	{"jl:{<jid>}", "hash", "accounts", "the JID's links: username → c:<code sha256>:<expiry ms> (code waiting) or v:<code sha256>:<verified ms>; !fails (wrong codes in a row), !nomentions"},
	{"f:{<user>}", "sorted set", "subscribers", "bare JIDs of the author's followers, all scored 0 (walked in JID order); with several follower shards, shard 0 of them"},
	{"f:{<user>#<k>}", "sorted set", "subscribers", "shard k (1 to the shard count − 1) of the author's followers, when STARLING_FOLLOWER_SHARDS > 1: a JID is in shard FNV-1a(JID) mod the count; each shard its own slot"},
	{"fp:{<user>}:<post id>", "hash", "subscribers", "fanout progress of a post: after (last JID walked), next (batch number), done (8 days; 1 hour once done)"},
	{"fs:{<user>}:<post id>", "string", "subscribers", "batches of a post being sent now (expires 2 min after the last began)"},
	{"bp:{<user>}:<batch id>", "string", "subscribers", "recipients of a delivery batch (id: its Nats-Msg-Id) the XMPP server confirmed, skipped when it is redelivered (1 h; 10 min once sent whole)"},
	{"g:<jid>", "hash", "subscribers", "usernames the JID follows → \"1\" (a listpack while small)"},
	{"s:{<jid>}", "hash", "subscribers", "follower state: off, presence, asked, granted, bounces, unreachable"},
	{"o:{<jid>}", "set", "subscribers", "the JID's resources online"},
	{"tk:{<jid>}", "set", "subscribers", "the words and #tags the JID tracks (at most STARLING_MAX_TRACK)"},
	{"k:{<word>}", "sorted set", "subscribers", "bare JIDs tracking the word or #tag (case-folded), all scored 0, walked with the author's followers"},
	{"pg", "hash", "subscribers", "bare JID → our JID it granted its presence to (probe targets)"},
	{"pl", "string", "subscribers", "presence-probe lease: id of the component link that probes after a (re)connect, the others skip (30 s, released when that link ends)"},
	{"cfg", "hash", "subscribers", "settings fixed once data exists, recorded by the first process to start: follower_shards"},
}

// User is u:{<user>}.
func (l Layout) User(user string) string { return l.Prefix + "u:{" + user + "}" }

// Token is t:<sha256 hex>.
func (l Layout) Token(hash string) string { return l.Prefix + "t:" + hash }

// Posts is p:{<user>}.
func (l Layout) Posts(user string) string { return l.Prefix + "p:{" + user + "}" }

// PostOrder is l:{<user>}.
func (l Layout) PostOrder(user string) string { return l.Prefix + "l:{" + user + "}" }

// PostAuthor is a:<post id>.
func (l Layout) PostAuthor(id string) string { return l.Prefix + "a:" + id }

// Idempotency is i:{<user>}:<key>.
func (l Layout) Idempotency(user, key string) string {
	return l.Prefix + "i:{" + user + "}:" + key
}

// IdempotencyDone is d:{<user>}:<key>. It is a family of its own so that no
// client-chosen key can name it (an Idempotency-Key ending in ":done" once
// could).
func (l Layout) IdempotencyDone(user, key string) string {
	return l.Prefix + "d:{" + user + "}:" + key
}

// Retraction is x:{<user>}:<post id>.
func (l Layout) Retraction(user, id string) string {
	return l.Prefix + "x:{" + user + "}:" + id
}

// Followers is f:{<user>}.
func (l Layout) Followers(user string) string { return l.Prefix + "f:{" + user + "}" }

// FollowerShard is shard k of an author's followers: f:{<user>} for shard
// 0, so that one shard is the unsharded layout, and f:{<user>#<k>} for the
// others, each with a hash tag of its own so that Redis Cluster spreads an
// author's shards over its slots. Usernames never hold '#'.
func (l Layout) FollowerShard(user string, k int) string {
	if k == 0 {
		return l.Followers(user)
	}
	return l.Prefix + "f:{" + user + "#" + strconv.Itoa(k) + "}"
}

// FanoutProgress is fp:{<user>}:<post id>.
func (l Layout) FanoutProgress(user, id string) string {
	return l.Prefix + "fp:{" + user + "}:" + id
}

// Sending is fs:{<user>}:<post id>.
func (l Layout) Sending(user, id string) string {
	return l.Prefix + "fs:{" + user + "}:" + id
}

// BatchProgress is bp:{<user>}:<batch id>.
func (l Layout) BatchProgress(user, batchID string) string {
	return l.Prefix + "bp:{" + user + "}:" + batchID
}

// DeletedPost is dp:{<user>}:<post id>.
func (l Layout) DeletedPost(user, id string) string {
	return l.Prefix + "dp:{" + user + "}:" + id
}

// Links is j:{<user>}.
func (l Layout) Links(user string) string { return l.Prefix + "j:{" + user + "}" }

// JIDLinks is jl:{<jid>}.
func (l Layout) JIDLinks(jid string) string { return l.Prefix + "jl:{" + jid + "}" }

// Tracking is tk:{<jid>}.
func (l Layout) Tracking(jid string) string { return l.Prefix + "tk:{" + jid + "}" }

// Trackers is k:{<word>}: a match key (fanout.MatchKeys) never holds a
// brace, so the whole key is the hash tag.
func (l Layout) Trackers(word string) string { return l.Prefix + "k:{" + word + "}" }

// Following is g:<jid>.
func (l Layout) Following(jid string) string { return l.Prefix + "g:" + jid }

// State is s:{<jid>}.
func (l Layout) State(jid string) string { return l.Prefix + "s:{" + jid + "}" }

// Resources is o:{<jid>}.
func (l Layout) Resources(jid string) string { return l.Prefix + "o:{" + jid + "}" }

// ProbeGrants is pg.
func (l Layout) ProbeGrants() string { return l.Prefix + "pg" }

// Settings is cfg.
func (l Layout) Settings() string { return l.Prefix + "cfg" }

// ProbeLease is pl.
func (l Layout) ProbeLease() string { return l.Prefix + "pl" }
