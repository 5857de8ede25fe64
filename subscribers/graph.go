package subscribers

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"starling.dev/starling/fanout"
)

var _ fanout.FollowerPager = (*RedisStore)(nil)

// Follow makes the bare JID follow author. It reports whether the relation is
// new. The caller checks that the author exists.
func (s *RedisStore) Follow(ctx context.Context, author, jid string) (bool, error) {
	var added *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		added = p.SAdd(ctx, s.keys.Followers(author), jid)
		p.HSet(ctx, s.keys.Following(jid), author, followingMark)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("subscribers: follow %s -> %s: %w", jid, author, err)
	}
	return added.Val() == 1, nil
}

// Unfollow ends the relation. It reports whether there was one.
func (s *RedisStore) Unfollow(ctx context.Context, author, jid string) (bool, error) {
	var removed *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		removed = p.SRem(ctx, s.keys.Followers(author), jid)
		p.HDel(ctx, s.keys.Following(jid), author)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("subscribers: unfollow %s -> %s: %w", jid, author, err)
	}
	return removed.Val() == 1, nil
}

// Following returns the authors a bare JID follows, sorted.
func (s *RedisStore) Following(ctx context.Context, jid string) ([]string, error) {
	authors, err := s.rdb.HKeys(ctx, s.keys.Following(jid)).Result()
	if err != nil {
		return nil, fmt.Errorf("subscribers: following of %s: %w", jid, err)
	}
	sort.Strings(authors)
	return authors, nil
}

// ScanFollowers calls page with successive SSCAN pages of an author's
// followers who get posts now: not paused, not known to be offline (unknown
// presence counts as reachable), not recently unreachable. Each round trip
// is one pipeline holding the current page's states and the next page's
// SSCAN, so a scan of P pages costs P+1 round trips. count is a hint: Redis
// may return more or fewer per page. The slice passed to page is reused
// after it returns.
func (s *RedisStore) ScanFollowers(ctx context.Context, author string, count int, page func([]string) error) error {
	key := s.keys.Followers(author)
	keys, cursor, err := s.rdb.SScan(ctx, key, 0, "", int64(count)).Result()
	if err != nil {
		return fmt.Errorf("subscribers: followers of %s: %w", author, err)
	}
	var states []*redis.SliceCmd
	var deliver []string
	for {
		var next *redis.ScanCmd
		states = states[:0]
		if len(keys) > 0 || cursor != 0 {
			_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, jid := range keys {
					states = append(states, p.HMGet(ctx, s.keys.State(jid), stateFields...))
				}
				if cursor != 0 {
					next = p.SScan(ctx, key, cursor, "", int64(count))
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("subscribers: followers of %s: %w", author, err)
			}
		}
		now := time.Now()
		deliver = deliver[:0]
		for i, jid := range keys {
			if stateOf(states[i].Val()).deliverable(now) {
				deliver = append(deliver, jid)
			}
		}
		if len(deliver) > 0 {
			if err := page(deliver); err != nil {
				return err
			}
		}
		if next == nil {
			return nil
		}
		keys, cursor = next.Val()
	}
}

// FollowerPage returns one SSCAN page of all of an author's followers,
// whatever their state, appended to buf, and the cursor of the next page
// (zero when the scan is complete). It serves the API's follower listing;
// deliveries use ScanFollowers.
func (s *RedisStore) FollowerPage(ctx context.Context, author string, cursor uint64, count int, buf []string) ([]string, uint64, error) {
	keys, next, err := s.rdb.SScan(ctx, s.keys.Followers(author), cursor, "", int64(count)).Result()
	if err != nil {
		return buf, 0, fmt.Errorf("subscribers: followers of %s: %w", author, err)
	}
	return append(buf, keys...), next, nil
}
