// Package accounts keeps Starling's authors in Redis: their accounts and
// token hashes, their recent posts (the history the API pages through and
// the index from post id to author), the idempotency and retraction
// records that make retried requests safe, and the Jabber addresses linked
// to each account (links.go): the codes that prove them, the verified
// links that may post by IM and get the author's mentions.
//
// Keys are built by internal/rediskeys; docs/ARCHITECTURE.md has the table.
// All keys of one author share the hash tag {<username>}, so the scripts over
// them run on one Redis Cluster slot; the index a:<id> and the token key
// t:<hash> live elsewhere and are written outside the author's scripts.
package accounts
