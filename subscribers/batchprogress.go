package subscribers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"starling.dev/starling/fanout"
)

var _ fanout.BatchProgress = (*RedisStore)(nil)

// A batch's confirmed count is kept past the batch's last useful attempt:
// a post an hour old is no longer delivered (fanout.DefaultMaxLag, the
// default of STARLING_DELIVERY_MAX_LAG). The count of a batch sent whole
// only serves a redelivery after its ack was lost (NATS restarting, the
// gateway killed before acking), which comes within AckWait of NATS being
// back: it is kept a few minutes, so that a busy service holds few. A
// count expired early only costs duplicates.
const (
	batchProgressTTL = time.Hour
	batchSentTTL     = 10 * time.Minute
)

// raiseConfirmed sets the count to ARGV[1] unless it is already higher: two
// attempts of one batch may overlap (the first outlived AckWait), and the
// count never goes back.
var raiseConfirmed = redis.NewScript(`
local n = tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if n > cur then
  redis.call('SET', KEYS[1], n, 'EX', ARGV[2])
end
return 0
`)

// Confirmed returns how many of the batch's leading recipients the XMPP
// server confirmed on an earlier attempt.
func (s *RedisStore) Confirmed(ctx context.Context, author, batchID string) (int, error) {
	n, err := s.rdb.Get(ctx, s.keys.BatchProgress(author, batchID)).Int()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("subscribers: confirmed recipients of batch %s: %w", batchID, err)
	}
	return n, nil
}

// SetConfirmed raises the batch's confirmed count to n; whole means the
// batch was sent.
func (s *RedisStore) SetConfirmed(ctx context.Context, author, batchID string, n int, whole bool) error {
	ttl := batchProgressTTL
	if whole {
		ttl = batchSentTTL
	}
	key := s.keys.BatchProgress(author, batchID)
	if err := raiseConfirmed.Run(ctx, s.rdb, []string{key}, n, int(ttl/time.Second)).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("subscribers: save confirmed recipients of batch %s: %w", batchID, err)
	}
	return nil
}
