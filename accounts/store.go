package accounts

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"starling.dev/starling/internal/rediskeys"
)

// Defaults of RedisConfig, the one place they are written.
const (
	// DefaultRecentPosts is how many posts per author stay addressable.
	DefaultRecentPosts = 1000
	// DefaultIdempotencyTTL is how long an Idempotency-Key is remembered.
	DefaultIdempotencyTTL = 24 * time.Hour
)

// RedisConfig configures a RedisStore.
type RedisConfig struct {
	// Prefix is put before every key; empty means no prefix.
	Prefix string
	// RecentPosts is how many posts per author are kept; zero means
	// DefaultRecentPosts.
	RecentPosts int
	// IdempotencyTTL is how long an Idempotency-Key is remembered; zero
	// means DefaultIdempotencyTTL.
	IdempotencyTTL time.Duration
}

// Validate reports whether the configuration is usable.
func (c RedisConfig) Validate() error {
	if c.RecentPosts < 0 {
		return errors.New("accounts: RecentPosts must not be negative")
	}
	if c.IdempotencyTTL < 0 {
		return errors.New("accounts: IdempotencyTTL must not be negative")
	}
	return nil
}

func (c RedisConfig) withDefaults() RedisConfig {
	if c.RecentPosts == 0 {
		c.RecentPosts = DefaultRecentPosts
	}
	if c.IdempotencyTTL == 0 {
		c.IdempotencyTTL = DefaultIdempotencyTTL
	}
	return c
}

// Graph is what an account needs of the social graph: the number of
// followers for the profile, and their removal with the account.
// subscribers.RedisStore implements it.
type Graph interface {
	FollowerCount(ctx context.Context, author string) (int64, error)
	DropFollowers(ctx context.Context, author string) error
}

// RedisStore keeps authors' accounts, tokens, post history and idempotency
// records in Redis. It is safe for concurrent use.
type RedisStore struct {
	rdb   redis.UniversalClient
	graph Graph
	keys  rediskeys.Layout
	cfg   RedisConfig
	// stale holds the a:<id> index keys of posts trimmed from a history,
	// deleted in the pipeline of the next RecordPost (posts.go).
	stale *staleIndex
	// rec groups concurrent RecordPost calls into one pipeline.
	rec *recorder
}

// NewRedisStore returns a store over rdb. The caller owns rdb and closes it.
func NewRedisStore(rdb redis.UniversalClient, graph Graph, cfg RedisConfig) (*RedisStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if graph == nil {
		return nil, errors.New("accounts: a Graph is required")
	}
	cfg = cfg.withDefaults()
	return &RedisStore{rdb: rdb, graph: graph, keys: rediskeys.Layout{Prefix: cfg.Prefix}, cfg: cfg, stale: &staleIndex{}, rec: &recorder{}}, nil
}
