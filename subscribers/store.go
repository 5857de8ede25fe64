package subscribers

import (
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisConfig configures a RedisStore.
type RedisConfig struct {
	// Prefix is put before every key; empty means no prefix.
	Prefix string
	// RecentPosts is how many posts per author are kept; zero means 20.
	RecentPosts int
	// IdempotencyTTL is how long an Idempotency-Key is remembered; zero means 24 h.
	IdempotencyTTL time.Duration
}

// Validate reports whether the configuration is usable.
func (c RedisConfig) Validate() error {
	if c.RecentPosts < 0 {
		return errors.New("subscribers: RecentPosts must not be negative")
	}
	if c.IdempotencyTTL < 0 {
		return errors.New("subscribers: IdempotencyTTL must not be negative")
	}
	return nil
}

// RedisStore is the Redis implementation of the social graph and accounts.
// It is safe for concurrent use.
type RedisStore struct {
	rdb redis.UniversalClient
	cfg RedisConfig
}

// NewRedisStore returns a store over rdb. The caller owns rdb and closes it.
func NewRedisStore(rdb redis.UniversalClient, cfg RedisConfig) (*RedisStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.RecentPosts == 0 {
		cfg.RecentPosts = 20
	}
	if cfg.IdempotencyTTL == 0 {
		cfg.IdempotencyTTL = 24 * time.Hour
	}
	return &RedisStore{rdb: rdb, cfg: cfg}, nil
}

func (s *RedisStore) userKey(user string) string      { return s.cfg.Prefix + "u:{" + user + "}" }
func (s *RedisStore) followersKey(user string) string { return s.cfg.Prefix + "f:{" + user + "}" }
func (s *RedisStore) idemKey(user, key string) string {
	return s.cfg.Prefix + "i:{" + user + "}:" + key
}
func (s *RedisStore) tokenKey(hash string) string { return s.cfg.Prefix + "t:" + hash }

// followingKey is g:<jid>, the authors a JID follows: a hash whose fields are
// the usernames, each with the value followingMark. Redis keeps a hash of up
// to hash-max-listpack-entries (128) short fields as one listpack, a few
// bytes per field, where Redis 7.0 keeps every set of strings as a hashtable
// (MEMORY USAGE of a one-author key: 104 bytes as a hash, 208 as a set).
func (s *RedisStore) followingKey(jid string) string { return s.cfg.Prefix + "g:" + jid }

// followingMark is the value of every field of g:<jid>; only the field counts.
const followingMark = "1"
