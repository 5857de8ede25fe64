package subscribers

import (
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"starling.dev/starling/internal/rediskeys"
)

// RedisStore is the Redis implementation of the social graph and of what
// the gateway knows of each follower. It is safe for concurrent use.
type RedisStore struct {
	rdb  redis.UniversalClient
	keys rediskeys.Layout
	// shards is how many sorted sets each author's followers are spread
	// over (followerShard), at least 1.
	shards int
	// gated makes follower set operations wait for checked
	// (WithShardCheck); checked is set once CheckFollowerShards passed,
	// refused once the gate met a different count.
	gated   bool
	checked atomic.Bool
	refused atomic.Pointer[ShardCountError]
}

// Option changes a store built by NewRedisStore.
type Option func(*RedisStore)

// MaxFollowerShards bounds WithFollowerShards: a walk holds up to a page
// read ahead from each shard, and a single page (FollowerPage) reads each
// shard's share of it and a margin, so with 64 shards and pages of 500 a
// walk holds up to 33,000 JIDs and a page reads 1,280.
const MaxFollowerShards = 64

// WithFollowerShards spreads each author's followers over n sorted sets,
// each in a Redis Cluster slot of its own, so that a celebrity's walk is
// served by several nodes at once. n below 1 means 1, the single set
// f:{<user>}, which is also shard 0 of any n. Every process over the same
// data must use the same n (CheckFollowerShards).
func WithFollowerShards(n int) Option {
	return func(s *RedisStore) { s.shards = max(1, n) }
}

// WithShardCheck makes every read or write of follower sets make sure
// first that the data in Redis was written with the store's shard count:
// until CheckFollowerShards has passed once, each such operation calls it
// and fails with its error (a *ShardCountError when the counts differ).
// A process checks at start; this covers a start while Redis was away.
func WithShardCheck() Option {
	return func(s *RedisStore) { s.gated = true }
}

// NewRedisStore returns a store over rdb whose keys start with prefix
// (empty means none). The caller owns rdb and closes it.
func NewRedisStore(rdb redis.UniversalClient, prefix string, opts ...Option) *RedisStore {
	s := &RedisStore{rdb: rdb, keys: rediskeys.Layout{Prefix: prefix}, shards: 1}
	for _, o := range opts {
		o(s)
	}
	return s
}

// followingMark is the value of every field of g:<jid>; only the field counts.
// A hash of up to hash-max-listpack-entries (128) short fields is one
// listpack, a few bytes per field, where Redis 7.0 keeps every set of
// strings as a hashtable (MEMORY USAGE of a one-author key: 104 bytes as a
// hash, 208 as a set).
const followingMark = "1"
