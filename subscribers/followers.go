package subscribers

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// AddFollowers makes every bare JID in jids follow author, in one pipelined
// round trip, and returns how many of them did not follow before (a JID
// repeated in jids counts once). Like Follow it writes f:{author} and each
// g:<jid>; the caller checks that the author exists and bounds len(jids).
func (s *RedisStore) AddFollowers(ctx context.Context, author string, jids []string) (int, error) {
	if len(jids) == 0 {
		return 0, nil
	}
	members := make([]any, len(jids))
	for i, j := range jids {
		members[i] = j
	}
	var added *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		added = p.SAdd(ctx, s.followersKey(author), members...)
		for _, j := range jids {
			p.HSet(ctx, s.followingKey(j), author, followingMark)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("subscribers: add %d followers to %s: %w", len(jids), author, err)
	}
	return int(added.Val()), nil
}

// IsFollower reports whether the bare JID follows author.
func (s *RedisStore) IsFollower(ctx context.Context, author, jid string) (bool, error) {
	ok, err := s.rdb.SIsMember(ctx, s.followersKey(author), jid).Result()
	if err != nil {
		return false, fmt.Errorf("subscribers: is %s a follower of %s: %w", jid, author, err)
	}
	return ok, nil
}
