package subscribers

import (
	"github.com/redis/go-redis/v9"

	"starling.dev/starling/internal/rediskeys"
)

// RedisStore is the Redis implementation of the social graph and of what
// the gateway knows of each follower. It is safe for concurrent use.
type RedisStore struct {
	rdb  redis.UniversalClient
	keys rediskeys.Layout
}

// NewRedisStore returns a store over rdb whose keys start with prefix
// (empty means none). The caller owns rdb and closes it.
func NewRedisStore(rdb redis.UniversalClient, prefix string) *RedisStore {
	return &RedisStore{rdb: rdb, keys: rediskeys.Layout{Prefix: prefix}}
}

// followingMark is the value of every field of g:<jid>; only the field counts.
// A hash of up to hash-max-listpack-entries (128) short fields is one
// listpack, a few bytes per field, where Redis 7.0 keeps every set of
// strings as a hashtable (MEMORY USAGE of a one-author key: 104 bytes as a
// hash, 208 as a set).
const followingMark = "1"
