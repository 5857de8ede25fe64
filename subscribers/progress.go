package subscribers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"starling.dev/starling/fanout"
)

var _ fanout.ProgressStore = (*RedisStore)(nil)

// Each post's fanout progress is a small hash under its author's hash tag,
// fp:{alice}:<post id>. While the fanout is under way it is kept a day
// longer than the POSTS stream keeps the post (7 days), so a retry at any
// age resumes. Once the fanout is done it is kept an hour: long enough for
// a post whose ack was lost to be redelivered and skipped, and as long as
// the default stale-post limit (STARLING_DELIVERY_MAX_LAG), past which a
// replayed post is not delivered anyway; a busy service does not hold a
// record for every post of the week. The batches of a
// post being sent are counted in fs:{alice}:<post id>, which expires
// sendingLease after the last batch began, so a sender that died mid-batch
// holds up the post's retraction for that long at most.
const (
	progressTTL  = 8 * 24 * time.Hour
	doneTTL      = time.Hour
	sendingLease = 2 * time.Minute
)

// Fields of fp:{<user>}:<post id>.
const (
	fieldAfter = "after"
	fieldNext  = "next"
	fieldDone  = "done"
)

// Progress returns the saved fanout progress of the author's post.
func (s *RedisStore) Progress(ctx context.Context, author, postID string) (fanout.Progress, error) {
	v, err := s.rdb.HMGet(ctx, s.keys.FanoutProgress(author, postID), fieldAfter, fieldNext, fieldDone).Result()
	if err != nil {
		return fanout.Progress{}, fmt.Errorf("subscribers: fanout progress of %s: %w", postID, err)
	}
	var p fanout.Progress
	p.After, _ = v[0].(string)
	if n, ok := v[1].(string); ok {
		if p.Next, err = strconv.Atoi(n); err != nil {
			return fanout.Progress{}, fmt.Errorf("subscribers: fanout progress of %s: next %q", postID, n)
		}
	}
	p.Done = v[2] == "1"
	return p, nil
}

// SaveProgress stores the fanout progress of the author's post.
func (s *RedisStore) SaveProgress(ctx context.Context, author, postID string, p fanout.Progress) error {
	key := s.keys.FanoutProgress(author, postID)
	done, ttl := "0", progressTTL
	if p.Done {
		done, ttl = "1", doneTTL
	}
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.HSet(ctx, key, fieldAfter, p.After, fieldNext, p.Next, fieldDone, done)
		pipe.Expire(ctx, key, ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("subscribers: save fanout progress of %s: %w", postID, err)
	}
	return nil
}

// BeginSend counts one more batch of the author's post as being sent.
func (s *RedisStore) BeginSend(ctx context.Context, author, postID string) error {
	return s.countSend(ctx, author, postID, 1)
}

// EndSend counts one batch of the author's post less.
func (s *RedisStore) EndSend(ctx context.Context, author, postID string) error {
	return s.countSend(ctx, author, postID, -1)
}

func (s *RedisStore) countSend(ctx context.Context, author, postID string, by int64) error {
	key := s.keys.Sending(author, postID)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.IncrBy(ctx, key, by)
		// Refreshed on the way down too, so that a count gone negative
		// (its key expired mid-send) does not stay.
		p.Expire(ctx, key, sendingLease)
		return nil
	})
	if err != nil {
		return fmt.Errorf("subscribers: sends of %s: %w", postID, err)
	}
	return nil
}

// Sending returns how many batches of the author's post are being sent.
func (s *RedisStore) Sending(ctx context.Context, author, postID string) (int64, error) {
	n, err := s.rdb.Get(ctx, s.keys.Sending(author, postID)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("subscribers: sends of %s: %w", postID, err)
	}
	return n, nil
}
