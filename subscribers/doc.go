// Package subscribers keeps Starling's social graph and per-user state in
// Redis: accounts and their token hashes, followers of each author, the
// authors each JID follows, posts, and what the gateway knows of each
// follower (paused, presence, reachability).
//
// Key layout (under a configurable prefix; see docs/ARCHITECTURE.md):
//
//	u:{alice}         hash: display_name, bio, created_at, token_hash, posts
//	f:{alice}         set of follower bare JIDs
//	p:{alice}         hash: post id → post (JSON), the author's history
//	l:{alice}         sorted set of the post ids, all scored 0 (ULIDs sort by time)
//	i:{alice}:<key>   idempotency record of one POST /v1/statuses (JSON, 24 h)
//	x:{alice}:<id>    retraction reserved for deleting post <id> (24 h)
//	a:<post id>       author of a post, for GET /v1/statuses/{id}
//	t:<sha256 hex>    username owning that token hash
//	g:<bare jid>      hash: username that JID follows → "1" (a listpack while small)
//	s:{<bare jid>}    hash: off, presence, asked, granted, bounces, unreachable
//	o:{<bare jid>}    set of the JID's resources online
//	pg                hash: bare JID → our JID it granted its presence to
//
// Keys of one author share the hash tag {alice}, and keys of one follower
// the tag {<jid>}, so Redis Cluster keeps each group on one slot and the
// scripts over them work; a follow touches f:{alice} and g:<jid>, which live
// on different slots and are written with one pipeline, not a transaction.
package subscribers
