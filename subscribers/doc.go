// Package subscribers keeps Starling's social graph in Redis — the followers
// of each author and the authors each JID follows — and what the gateway
// knows of each follower: paused ("off"), presence, presence grants, bounces.
// The fanout stage walks followers here in JID order (WalkFollowers),
// skipping those who should not get a post now, and keeps each post's
// fanout progress (Progress, SaveProgress) and its sends in flight
// (BeginSend, EndSend, Sending), so that a retried fanout resumes where the
// last attempt stopped and a retraction never overtakes its post. It also
// keeps the track index, the words each JID tracks and the JIDs tracking
// each word (track.go), which the fanout walks merged with the followers
// (WalkAudience), each JID once.
//
// Keys are built by internal/rediskeys; docs/ARCHITECTURE.md has the table.
// A follower's keys share the hash tag {<jid>} and an author's follower set
// the tag {<username>}, so each script runs on one Redis Cluster slot; a
// follow touches f:{alice} and g:<jid>, which live on different slots and
// are written with one pipeline, not a transaction. With several follower
// shards (WithFollowerShards) an author's followers are several sets,
// f:{<user>} and f:{<user>#<k>}, each in a slot of its own, read together
// into the pages one set would give (shards.go).
package subscribers
