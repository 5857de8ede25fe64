package subscribers

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
	"starling.dev/starling"
)

// deletePage is how many followers or posts DeleteUser handles per round
// trip, which bounds its memory however many followers the author has.
const deletePage = 1000

// DeleteUser removes an author and everything that hangs on them: the token,
// the followers (and the author from each follower's g:<jid>), the posts and
// their a:<id> index. It returns starling.ErrUnknownUser if there is no such
// author. The account key goes last, so a deletion cut short is finished by
// calling DeleteUser again; the token goes first, so the author cannot post
// meanwhile. Idempotency and retraction records are left to expire (24 h).
func (s *RedisStore) DeleteUser(ctx context.Context, username string) error {
	hash, err := s.rdb.HGet(ctx, s.userKey(username), "token_hash").Result()
	if errors.Is(err, redis.Nil) {
		ok, err := s.UserExists(ctx, username)
		if err != nil {
			return err
		}
		if !ok {
			return starling.ErrUnknownUser
		}
	} else if err != nil {
		return fmt.Errorf("subscribers: delete user %q: %w", username, err)
	}
	if hash != "" {
		if err := s.rdb.Del(ctx, s.tokenKey(hash)).Err(); err != nil {
			return fmt.Errorf("subscribers: delete user %q: %w", username, err)
		}
	}
	if err := s.dropFollowers(ctx, username); err != nil {
		return err
	}
	if err := s.dropPosts(ctx, username); err != nil {
		return err
	}
	err = s.rdb.Unlink(ctx, s.followersKey(username), s.postsKey(username), s.postOrderKey(username),
		s.userKey(username)).Err()
	if err != nil {
		return fmt.Errorf("subscribers: delete user %q: %w", username, err)
	}
	return nil
}

// dropFollowers removes the author from the g:<jid> of each follower, page by
// page, and then the follower set.
func (s *RedisStore) dropFollowers(ctx context.Context, author string) error {
	var cursor uint64
	for {
		jids, next, err := s.rdb.SScan(ctx, s.followersKey(author), cursor, "", deletePage).Result()
		if err != nil {
			return fmt.Errorf("subscribers: delete followers of %q: %w", author, err)
		}
		if len(jids) > 0 {
			_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, j := range jids {
					p.HDel(ctx, s.followingKey(j), author)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("subscribers: delete followers of %q: %w", author, err)
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// dropPosts deletes the a:<id> index of each of the author's posts.
func (s *RedisStore) dropPosts(ctx context.Context, author string) error {
	for start := int64(0); ; start += deletePage {
		ids, err := s.rdb.ZRange(ctx, s.postOrderKey(author), start, start+deletePage-1).Result()
		if err != nil {
			return fmt.Errorf("subscribers: delete posts of %q: %w", author, err)
		}
		if err := s.dropStatusIndex(ctx, ids); err != nil {
			return err
		}
		if len(ids) < deletePage {
			return nil
		}
	}
}
