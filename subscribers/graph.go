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
		added = p.SAdd(ctx, s.followersKey(author), jid)
		p.SAdd(ctx, s.followingKey(jid), author)
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
		removed = p.SRem(ctx, s.followersKey(author), jid)
		p.SRem(ctx, s.followingKey(jid), author)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("subscribers: unfollow %s -> %s: %w", jid, author, err)
	}
	return removed.Val() == 1, nil
}

// Following returns the authors a bare JID follows, sorted.
func (s *RedisStore) Following(ctx context.Context, jid string) ([]string, error) {
	authors, err := s.rdb.SMembers(ctx, s.followingKey(jid)).Result()
	if err != nil {
		return nil, fmt.Errorf("subscribers: following of %s: %w", jid, err)
	}
	sort.Strings(authors)
	return authors, nil
}

// FollowerPage returns one SSCAN page of an author's followers who get posts
// now, appended to buf, and the cursor of the next page (zero when the scan
// is complete). Followers who said "off" or are known to be offline are left
// out; unknown presence counts as reachable. The page's states are read in
// one pipelined round trip. count is a hint: Redis may return more or fewer.
func (s *RedisStore) FollowerPage(ctx context.Context, author string, cursor uint64, count int, buf []string) ([]string, uint64, error) {
	keys, next, err := s.rdb.SScan(ctx, s.followersKey(author), cursor, "", int64(count)).Result()
	if err != nil {
		return buf, 0, fmt.Errorf("subscribers: followers of %s: %w", author, err)
	}
	if len(keys) == 0 {
		return buf, next, nil
	}
	states := make([]*redis.SliceCmd, len(keys))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, jid := range keys {
			states[i] = p.HMGet(ctx, s.stateKey(jid), stateFields...)
		}
		return nil
	})
	if err != nil {
		return buf, 0, fmt.Errorf("subscribers: states of %s's followers: %w", author, err)
	}
	now := time.Now()
	for i, jid := range keys {
		if stateOf(states[i].Val()).deliverable(now) {
			buf = append(buf, jid)
		}
	}
	return buf, next, nil
}
