package subscribers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// TakeProbeLease sets the probe lease (pl) to holder, for ttl, unless
// someone holds it, and reports whether it did: of several gateways that
// reconnect together, the link that gets it probes followers' presence
// (see xmpp.ProbeLeaser).
func (s *RedisStore) TakeProbeLease(ctx context.Context, holder string, ttl time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, s.keys.ProbeLease(), holder, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("subscribers: take the probe lease: %w", err)
	}
	return ok, nil
}

// releaseIfHeld deletes KEYS[1] if it still holds ARGV[1]: a lease that
// expired and was taken by another is theirs.
var releaseIfHeld = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 0
`)

// ReleaseProbeLease gives the probe lease up if holder has it.
func (s *RedisStore) ReleaseProbeLease(ctx context.Context, holder string) error {
	err := releaseIfHeld.Run(ctx, s.rdb, []string{s.keys.ProbeLease()}, holder).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("subscribers: release the probe lease: %w", err)
	}
	return nil
}
