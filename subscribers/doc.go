// Package subscribers keeps Starling's social graph and per-user state in
// Redis: accounts and their token hashes, followers of each author, the
// authors each JID follows, and recent posts.
//
// Key layout (under a configurable prefix; see docs/ARCHITECTURE.md):
//
//	u:{alice}         hash: display_name, bio, created_at, token_hash, posts
//	f:{alice}         set of follower bare JIDs
//	r:{alice}         list of the latest posts (JSON), newest first
//	i:{alice}:<key>   idempotency record of one POST /v1/statuses (JSON, 24 h)
//	t:<sha256 hex>    username owning that token hash
//	g:<bare jid>      set of usernames that JID follows
//
// Keys of one author share the hash tag {alice}, so Redis Cluster keeps them
// on one slot; a follow touches f:{alice} and g:<jid>, which live on
// different slots and are written with one pipeline, not a transaction.
package subscribers
