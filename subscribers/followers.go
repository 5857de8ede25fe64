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
	members := make([]redis.Z, len(jids))
	for i, j := range jids {
		members[i] = redis.Z{Member: j}
	}
	var added *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		added = p.ZAddNX(ctx, s.keys.Followers(author), members...)
		for _, j := range jids {
			p.HSet(ctx, s.keys.Following(j), author, followingMark)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("subscribers: add %d followers to %s: %w", len(jids), author, err)
	}
	return int(added.Val()), nil
}

// deletePage is how many followers DropFollowers handles per round trip,
// which bounds its memory however many followers the author has.
const deletePage = 1000

// DropFollowers removes the author from the g:<jid> of each follower, page
// by page, and then the follower set; it is idempotent.
func (s *RedisStore) DropFollowers(ctx context.Context, author string) error {
	key := s.keys.Followers(author)
	for after := ""; ; {
		jids, err := s.followersAfter(ctx, s.rdb, key, after, deletePage).Result()
		if err != nil {
			return fmt.Errorf("subscribers: delete followers of %q: %w", author, err)
		}
		if len(jids) == 0 {
			break
		}
		_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, j := range jids {
				p.HDel(ctx, s.keys.Following(j), author)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("subscribers: delete followers of %q: %w", author, err)
		}
		after = jids[len(jids)-1]
	}
	if err := s.rdb.Unlink(ctx, s.keys.Followers(author)).Err(); err != nil {
		return fmt.Errorf("subscribers: delete followers of %q: %w", author, err)
	}
	return nil
}

// FollowerCount returns how many JIDs follow author.
func (s *RedisStore) FollowerCount(ctx context.Context, author string) (int64, error) {
	n, err := s.rdb.ZCard(ctx, s.keys.Followers(author)).Result()
	if err != nil {
		return 0, fmt.Errorf("subscribers: follower count of %s: %w", author, err)
	}
	return n, nil
}
