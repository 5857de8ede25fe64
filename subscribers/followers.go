package subscribers

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// AddFollowers makes every bare JID in jids follow author, in one pipelined
// round trip, and returns how many of them did not follow before (a JID
// repeated in jids counts once). Like Follow it writes the author's
// follower set (one ZADD per shard that gets a JID) and each g:<jid>; the
// caller checks that the author exists and bounds len(jids).
func (s *RedisStore) AddFollowers(ctx context.Context, author string, jids []string) (int, error) {
	if err := s.shardsChecked(ctx); err != nil {
		return 0, err
	}
	if len(jids) == 0 {
		return 0, nil
	}
	// members holds the JIDs grouped by shard: shard k's are
	// members[start[k]:start[k+1]] (a counting sort).
	members := make([]redis.Z, len(jids))
	start := make([]int, s.shards+1)
	for _, j := range jids {
		start[followerShard(j, s.shards)+1]++
	}
	for k := range s.shards {
		start[k+1] += start[k]
	}
	fill := append([]int(nil), start[:s.shards]...)
	for _, j := range jids {
		k := followerShard(j, s.shards)
		members[fill[k]] = redis.Z{Member: j}
		fill[k]++
	}
	added := make([]*redis.IntCmd, 0, s.shards)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k := range s.shards {
			if start[k] < start[k+1] {
				added = append(added, p.ZAddNX(ctx, s.keys.FollowerShard(author, k), members[start[k]:start[k+1]]...))
			}
		}
		for _, j := range jids {
			p.HSet(ctx, s.keys.Following(j), author, followingMark)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("subscribers: add %d followers to %s: %w", len(jids), author, err)
	}
	n := 0
	for _, a := range added {
		n += int(a.Val())
	}
	return n, nil
}

// deletePage is how many followers DropFollowers handles per round trip,
// which bounds its memory however many followers the author has.
const deletePage = 1000

// DropFollowers removes the author from the g:<jid> of each follower, page
// by page, and then the follower sets, shard by shard; it is idempotent.
func (s *RedisStore) DropFollowers(ctx context.Context, author string) error {
	if err := s.shardsChecked(ctx); err != nil {
		return err
	}
	for k := range s.shards {
		if err := s.dropShard(ctx, author, s.keys.FollowerShard(author, k)); err != nil {
			return fmt.Errorf("subscribers: delete followers of %q: %w", author, err)
		}
	}
	return nil
}

// dropShard empties one set of author's followers as DropFollowers does.
func (s *RedisStore) dropShard(ctx context.Context, author, key string) error {
	for after := ""; ; {
		jids, err := s.followersAfter(ctx, s.rdb, key, after, deletePage).Result()
		if err != nil {
			return err
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
			return err
		}
		after = jids[len(jids)-1]
	}
	return s.rdb.Unlink(ctx, key).Err()
}

// FollowerCount returns how many JIDs follow author: the size of the
// follower set, or the sum of its shards' sizes read in one pipeline.
func (s *RedisStore) FollowerCount(ctx context.Context, author string) (int64, error) {
	if err := s.shardsChecked(ctx); err != nil {
		return 0, err
	}
	if s.shards == 1 {
		n, err := s.rdb.ZCard(ctx, s.keys.Followers(author)).Result()
		if err != nil {
			return 0, fmt.Errorf("subscribers: follower count of %s: %w", author, err)
		}
		return n, nil
	}
	cards := make([]*redis.IntCmd, s.shards)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k := range cards {
			cards[k] = p.ZCard(ctx, s.keys.FollowerShard(author, k))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("subscribers: follower count of %s: %w", author, err)
	}
	var n int64
	for _, c := range cards {
		n += c.Val()
	}
	return n, nil
}
