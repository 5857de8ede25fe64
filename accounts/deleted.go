package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"starling.dev/starling"
)

// keepDeleted copies the post ARGV[1] of the history (KEYS[1]) to KEYS[2]
// for ARGV[2] ms, if it is there.
var keepDeleted = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
redis.call('SET', KEYS[2], v, 'PX', ARGV[2])
return 1`)

// keepDeletedPost keeps a copy of the author's post id, whose deletion is
// beginning, for as long as its retraction record: the post leaves the
// history as soon as its retraction is published, and the retraction's
// fanout reads the copy (DeletedPost) to reach those the post reached
// through its words and mentions. It is taken before the retraction is
// published, so the fanout always finds it.
func (s *RedisStore) keepDeletedPost(ctx context.Context, author, id string) error {
	keys := []string{s.keys.Posts(author), s.keys.DeletedPost(author, id)}
	if err := keepDeleted.Run(ctx, s.rdb, keys, id, s.cfg.IdempotencyTTL.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("accounts: keep deleted post %s: %w", id, err)
	}
	return nil
}

// DeletedPost returns the author's post id as it was when its deletion
// began, for up to IdempotencyTTL after; false if there is no such copy.
func (s *RedisStore) DeletedPost(ctx context.Context, author, id string) (starling.Post, bool, error) {
	data, err := s.rdb.Get(ctx, s.keys.DeletedPost(author, id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return starling.Post{}, false, nil
	}
	if err != nil {
		return starling.Post{}, false, fmt.Errorf("accounts: deleted post %s: %w", id, err)
	}
	var p starling.Post
	if err := json.Unmarshal(data, &p); err != nil {
		return starling.Post{}, false, fmt.Errorf("accounts: deleted post %s: %w", id, err)
	}
	return p, true, nil
}
