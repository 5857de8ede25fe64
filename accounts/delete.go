package accounts

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
	"starling.dev/starling"
)

// deletePage is how many posts DeleteUser handles per round trip, which
// bounds its memory however many posts the author has.
const deletePage = 1000

// DeleteUser removes an author and everything that hangs on them: the token,
// the linked JIDs, the followers (through the Graph), the posts and their
// a:<id> index. It returns starling.ErrUnknownUser if there is no such
// author. The account key goes last, so a deletion cut short is finished by
// calling DeleteUser again; the token goes first, so the author cannot post
// meanwhile. Idempotency and retraction records are left to expire (24 h).
func (s *RedisStore) DeleteUser(ctx context.Context, username string) error {
	hash, err := s.rdb.HGet(ctx, s.keys.User(username), "token_hash").Result()
	if errors.Is(err, redis.Nil) {
		ok, err := s.UserExists(ctx, username)
		if err != nil {
			return err
		}
		if !ok {
			return starling.ErrUnknownUser
		}
	} else if err != nil {
		return fmt.Errorf("accounts: delete user %q: %w", username, err)
	}
	if hash != "" {
		if err := s.rdb.Del(ctx, s.keys.Token(hash)).Err(); err != nil {
			return fmt.Errorf("accounts: delete user %q: %w", username, err)
		}
	}
	if err := s.dropLinks(ctx, username); err != nil {
		return err
	}
	if err := s.graph.DropFollowers(ctx, username); err != nil {
		return err
	}
	if err := s.dropPosts(ctx, username); err != nil {
		return err
	}
	err = s.rdb.Unlink(ctx, s.keys.Posts(username), s.keys.PostOrder(username), s.keys.User(username)).Err()
	if err != nil {
		return fmt.Errorf("accounts: delete user %q: %w", username, err)
	}
	return nil
}

// dropPosts deletes the a:<id> index of each of the author's posts.
func (s *RedisStore) dropPosts(ctx context.Context, author string) error {
	for start := int64(0); ; start += deletePage {
		ids, err := s.rdb.ZRange(ctx, s.keys.PostOrder(author), start, start+deletePage-1).Result()
		if err != nil {
			return fmt.Errorf("accounts: delete posts of %q: %w", author, err)
		}
		if err := s.dropStatusIndex(ctx, ids); err != nil {
			return err
		}
		if len(ids) < deletePage {
			return nil
		}
	}
}
