package subscribers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"starling.dev/starling/fanout"
)

// CreateUser stores a new author with the hash of their token. It returns
// fanout.ErrUserExists when the username is taken.
func (s *RedisStore) CreateUser(ctx context.Context, username, displayName, tokenHash string, now time.Time) error {
	created, err := s.rdb.HSetNX(ctx, s.userKey(username), "created_at", now.UTC().Format(time.RFC3339Nano)).Result()
	if err != nil {
		return fmt.Errorf("subscribers: create user %q: %w", username, err)
	}
	if !created {
		return fanout.ErrUserExists
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.userKey(username), "display_name", displayName, "token_hash", tokenHash, "posts", 0)
		p.Set(ctx, s.tokenKey(tokenHash), username, 0)
		return nil
	})
	if err != nil {
		return fmt.Errorf("subscribers: create user %q: %w", username, err)
	}
	return nil
}

// UserByTokenHash returns the username owning a token hash, or fanout.ErrUnknownToken.
func (s *RedisStore) UserByTokenHash(ctx context.Context, tokenHash string) (string, error) {
	user, err := s.rdb.Get(ctx, s.tokenKey(tokenHash)).Result()
	if errors.Is(err, redis.Nil) {
		return "", fanout.ErrUnknownToken
	}
	if err != nil {
		return "", fmt.Errorf("subscribers: token lookup: %w", err)
	}
	return user, nil
}

// UserExists reports whether an author exists.
func (s *RedisStore) UserExists(ctx context.Context, username string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.userKey(username)).Result()
	if err != nil {
		return false, fmt.Errorf("subscribers: user exists %q: %w", username, err)
	}
	return n == 1, nil
}

// Profile returns an author's profile with follower and post counts, or
// fanout.ErrUnknownUser.
func (s *RedisStore) Profile(ctx context.Context, username string) (fanout.Profile, error) {
	var fields *redis.MapStringStringCmd
	var followers *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		fields = p.HGetAll(ctx, s.userKey(username))
		followers = p.SCard(ctx, s.followersKey(username))
		return nil
	})
	if err != nil {
		return fanout.Profile{}, fmt.Errorf("subscribers: profile %q: %w", username, err)
	}
	f := fields.Val()
	if len(f) == 0 {
		return fanout.Profile{}, fanout.ErrUnknownUser
	}
	created, _ := time.Parse(time.RFC3339Nano, f["created_at"])
	posts, _ := strconv.ParseInt(f["posts"], 10, 64)
	return fanout.Profile{
		Username:    username,
		DisplayName: f["display_name"],
		Bio:         f["bio"],
		CreatedAt:   created,
		Followers:   followers.Val(),
		Posts:       posts,
	}, nil
}

// RecordPost counts a post the pipeline has durably accepted and keeps it
// among the author's recent posts.
func (s *RedisStore) RecordPost(ctx context.Context, p fanout.Post) error {
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("subscribers: record post: %w", err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.HIncrBy(ctx, s.userKey(p.Author), "posts", 1)
		pipe.LPush(ctx, s.recentKey(p.Author), data)
		pipe.LTrim(ctx, s.recentKey(p.Author), 0, int64(s.cfg.RecentPosts-1))
		return nil
	})
	if err != nil {
		return fmt.Errorf("subscribers: record post %s: %w", p.ID, err)
	}
	return nil
}

// RecentPosts returns up to n of an author's latest posts, newest first.
func (s *RedisStore) RecentPosts(ctx context.Context, username string, n int) ([]fanout.Post, error) {
	raw, err := s.rdb.LRange(ctx, s.recentKey(username), 0, int64(n-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("subscribers: recent posts %q: %w", username, err)
	}
	posts := make([]fanout.Post, 0, len(raw))
	for _, r := range raw {
		var p fanout.Post
		if err := json.Unmarshal([]byte(r), &p); err != nil {
			return nil, fmt.Errorf("subscribers: recent posts %q: %w", username, err)
		}
		posts = append(posts, p)
	}
	return posts, nil
}

// ReserveIdempotent remembers p as the result of the author's request with an
// Idempotency-Key. If the key was seen before, it returns the post stored then
// and true; the caller publishes that one instead, so a retry can only ever
// repeat the first post (JetStream deduplicates it by id).
func (s *RedisStore) ReserveIdempotent(ctx context.Context, author, key string, p fanout.Post) (fanout.Post, bool, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return fanout.Post{}, false, fmt.Errorf("subscribers: idempotency: %w", err)
	}
	k := s.idemKey(author, key)
	ok, err := s.rdb.SetNX(ctx, k, data, s.cfg.IdempotencyTTL).Result()
	if err != nil {
		return fanout.Post{}, false, fmt.Errorf("subscribers: idempotency: %w", err)
	}
	if ok {
		return p, false, nil
	}
	old, err := s.rdb.Get(ctx, k).Bytes()
	if err != nil {
		return fanout.Post{}, false, fmt.Errorf("subscribers: idempotency: %w", err)
	}
	var first fanout.Post
	if err := json.Unmarshal(old, &first); err != nil {
		return fanout.Post{}, false, fmt.Errorf("subscribers: idempotency: %w", err)
	}
	return first, true, nil
}
