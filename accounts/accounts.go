package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"starling.dev/starling"
)

// CreateUser stores a new author with the hash of their token. It returns
// starling.ErrUserExists when the username is taken.
func (s *RedisStore) CreateUser(ctx context.Context, username, displayName, tokenHash string, now time.Time) error {
	created, err := s.rdb.HSetNX(ctx, s.keys.User(username), "created_at", now.UTC().Format(time.RFC3339Nano)).Result()
	if err != nil {
		return fmt.Errorf("accounts: create user %q: %w", username, err)
	}
	if !created {
		return starling.ErrUserExists
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.keys.User(username), "display_name", displayName, "token_hash", tokenHash, "posts", 0)
		p.Set(ctx, s.keys.Token(tokenHash), username, 0)
		return nil
	})
	if err != nil {
		return fmt.Errorf("accounts: create user %q: %w", username, err)
	}
	return nil
}

// UserByTokenHash returns the username owning a token hash and that
// author's display name, or starling.ErrUnknownToken. The token key is checked
// against the hash in the account, so a token whose rotation or deletion was
// cut short by a crash (t: written or not yet deleted) never authenticates,
// nor does the token of an account deleted meanwhile. Two round trips: the
// GET of t:<hash>, then one HMGET of the account's token_hash and
// display_name, so a post needs no separate profile read.
func (s *RedisStore) UserByTokenHash(ctx context.Context, tokenHash string) (user, displayName string, err error) {
	user, err = s.rdb.Get(ctx, s.keys.Token(tokenHash)).Result()
	if errors.Is(err, redis.Nil) {
		return "", "", starling.ErrUnknownToken
	}
	if err != nil {
		return "", "", fmt.Errorf("accounts: token lookup: %w", err)
	}
	fields, err := s.rdb.HMGet(ctx, s.keys.User(user), "token_hash", "display_name").Result()
	if err != nil {
		return "", "", fmt.Errorf("accounts: token lookup: %w", err)
	}
	if current, ok := fields[0].(string); !ok || current != tokenHash {
		return "", "", starling.ErrUnknownToken
	}
	displayName, _ = fields[1].(string)
	return user, displayName, nil
}

// UserExists reports whether an author exists.
func (s *RedisStore) UserExists(ctx context.Context, username string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.keys.User(username)).Result()
	if err != nil {
		return false, fmt.Errorf("accounts: user exists %q: %w", username, err)
	}
	return n == 1, nil
}

// Profile returns an author's profile with follower and post counts, or
// starling.ErrUnknownUser.
func (s *RedisStore) Profile(ctx context.Context, username string) (starling.Profile, error) {
	f, err := s.rdb.HGetAll(ctx, s.keys.User(username)).Result()
	if err != nil {
		return starling.Profile{}, fmt.Errorf("accounts: profile %q: %w", username, err)
	}
	if len(f) == 0 {
		return starling.Profile{}, starling.ErrUnknownUser
	}
	followers, err := s.graph.FollowerCount(ctx, username)
	if err != nil {
		return starling.Profile{}, fmt.Errorf("accounts: profile %q: %w", username, err)
	}
	created, _ := time.Parse(time.RFC3339Nano, f["created_at"])
	posts, _ := strconv.ParseInt(f["posts"], 10, 64)
	return starling.Profile{
		Username:    username,
		DisplayName: f["display_name"],
		Bio:         f["bio"],
		CreatedAt:   created,
		Followers:   followers,
		Posts:       posts,
	}, nil
}

// updateProfile sets the fields given as ARGV pairs, only if the account exists.
var updateProfile = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1`)

// UpdateProfile changes an author's display name and bio; a nil pointer leaves
// the field as it is. It returns the profile after the change, or
// starling.ErrUnknownUser.
func (s *RedisStore) UpdateProfile(ctx context.Context, username string, displayName, bio *string) (starling.Profile, error) {
	var args []any
	if displayName != nil {
		args = append(args, "display_name", *displayName)
	}
	if bio != nil {
		args = append(args, "bio", *bio)
	}
	if len(args) > 0 {
		ok, err := updateProfile.Run(ctx, s.rdb, []string{s.keys.User(username)}, args...).Int()
		if err != nil {
			return starling.Profile{}, fmt.Errorf("accounts: update profile %q: %w", username, err)
		}
		if ok == 0 {
			return starling.Profile{}, starling.ErrUnknownUser
		}
	}
	return s.Profile(ctx, username)
}

// swapToken replaces the account's token hash and returns the old one, or
// false when there is no account.
var swapToken = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local old = redis.call('HGET', KEYS[1], 'token_hash')
redis.call('HSET', KEYS[1], 'token_hash', ARGV[1])
return old or ''`)

// RotateToken makes tokenHash the author's only token: the previous one stops
// authenticating before RotateToken returns. It returns starling.ErrUnknownUser
// if there is no such author. The token key of the new hash is written first
// and the old one deleted last, and UserByTokenHash checks both against the
// account, so a crash midway leaves exactly one working token.
func (s *RedisStore) RotateToken(ctx context.Context, username, tokenHash string) error {
	if err := s.rdb.Set(ctx, s.keys.Token(tokenHash), username, 0).Err(); err != nil {
		return fmt.Errorf("accounts: rotate token of %q: %w", username, err)
	}
	old, err := swapToken.Run(ctx, s.rdb, []string{s.keys.User(username)}, tokenHash).Text()
	if errors.Is(err, redis.Nil) {
		_ = s.rdb.Del(ctx, s.keys.Token(tokenHash)).Err()
		return starling.ErrUnknownUser
	}
	if err != nil {
		return fmt.Errorf("accounts: rotate token of %q: %w", username, err)
	}
	if old != "" && old != tokenHash {
		if err := s.rdb.Del(ctx, s.keys.Token(old)).Err(); err != nil {
			return fmt.Errorf("accounts: rotate token of %q: %w", username, err)
		}
	}
	return nil
}

// ReserveIdempotent remembers p as the result of the author's request with an
// Idempotency-Key. If the key was seen before, it returns the post stored then
// and true; the caller publishes that one instead, so a retry can only ever
// repeat the first post (JetStream deduplicates it by id).
func (s *RedisStore) ReserveIdempotent(ctx context.Context, author, key string, p starling.Post) (starling.Post, bool, error) {
	return s.reserve(ctx, s.keys.Idempotency(author, key), p)
}

// MarkIdempotentDone records that the post reserved under the author's
// Idempotency-Key has been published, so that a retry after JetStream's
// two-minute duplicate window returns it without publishing it again.
func (s *RedisStore) MarkIdempotentDone(ctx context.Context, author, key string) error {
	if err := s.rdb.Set(ctx, s.keys.IdempotencyDone(author, key), "1", s.cfg.IdempotencyTTL).Err(); err != nil {
		return fmt.Errorf("accounts: idempotency: %w", err)
	}
	return nil
}

// IdempotentDone reports whether MarkIdempotentDone was called for the key.
func (s *RedisStore) IdempotentDone(ctx context.Context, author, key string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.keys.IdempotencyDone(author, key)).Result()
	if err != nil {
		return false, fmt.Errorf("accounts: idempotency: %w", err)
	}
	return n == 1, nil
}

// ReserveRetraction remembers p as the retraction of the author's post id,
// or returns the retraction reserved by an earlier attempt and true, so that
// retried deletions publish one retraction (deduplicated by its id). It
// keeps a copy of the post for the retraction's fanout (DeletedPost).
func (s *RedisStore) ReserveRetraction(ctx context.Context, author, id string, p starling.Post) (starling.Post, bool, error) {
	if err := s.keepDeletedPost(ctx, author, id); err != nil {
		return starling.Post{}, false, err
	}
	return s.reserve(ctx, s.keys.Retraction(author, id), p)
}

func (s *RedisStore) reserve(ctx context.Context, k string, p starling.Post) (starling.Post, bool, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return starling.Post{}, false, fmt.Errorf("accounts: idempotency: %w", err)
	}
	ok, err := s.rdb.SetNX(ctx, k, data, s.cfg.IdempotencyTTL).Result()
	if err != nil {
		return starling.Post{}, false, fmt.Errorf("accounts: idempotency: %w", err)
	}
	if ok {
		return p, false, nil
	}
	old, err := s.rdb.Get(ctx, k).Bytes()
	if err != nil {
		return starling.Post{}, false, fmt.Errorf("accounts: idempotency: %w", err)
	}
	var first starling.Post
	if err := json.Unmarshal(old, &first); err != nil {
		return starling.Post{}, false, fmt.Errorf("accounts: idempotency: %w", err)
	}
	return first, true, nil
}
