package accounts

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"starling.dev/starling"
	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/subscribers"
)

// newStore returns an accounts store over the test's Redis, with the real
// social graph as its Graph.
func newStore(t *testing.T, r *testenv.Redis) *RedisStore {
	t.Helper()
	return newStoreConfig(t, r, RedisConfig{})
}

func newStoreConfig(t *testing.T, r *testenv.Redis, cfg RedisConfig) *RedisStore {
	t.Helper()
	rdb := r.Client(t)
	if cfg.Prefix == "" {
		cfg.Prefix = testenv.Prefix(t)
	}
	s, err := NewRedisStore(rdb, subscribers.NewRedisStore(rdb, cfg.Prefix), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRedisStore(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()

	t.Run("accounts", func(t *testing.T) {
		s := newStoreConfig(t, r, RedisConfig{RecentPosts: 20})
		now := time.Now()
		if err := s.CreateUser(ctx, "alice", "Alice", "hash1", now); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateUser(ctx, "alice", "Other", "hash2", now); !errors.Is(err, starling.ErrUserExists) {
			t.Fatalf("second create: %v", err)
		}
		if u, name, err := s.UserByTokenHash(ctx, "hash1"); err != nil || u != "alice" || name != "Alice" {
			t.Fatalf("token lookup: %q %q %v", u, name, err)
		}
		if _, _, err := s.UserByTokenHash(ctx, "hash2"); !errors.Is(err, starling.ErrUnknownToken) {
			t.Fatalf("unknown token: %v", err)
		}
		if _, err := s.Profile(ctx, "bob"); !errors.Is(err, starling.ErrUnknownUser) {
			t.Fatalf("unknown profile: %v", err)
		}
		for i := range 25 {
			if err := s.RecordPost(ctx, starling.Post{ID: fmt.Sprintf("%02d", i), Author: "alice", Text: "t"}); err != nil {
				t.Fatal(err)
			}
		}
		p, err := s.Profile(ctx, "alice")
		if err != nil || p.DisplayName != "Alice" || p.Posts != 25 || p.CreatedAt.Sub(now).Abs() > time.Millisecond {
			t.Fatalf("profile %+v %v", p, err)
		}
		recent, err := s.RecentPosts(ctx, "alice", 100)
		if err != nil || len(recent) != 20 || recent[0].ID != "24" {
			t.Fatalf("recent: %d posts, newest %v, %v", len(recent), recent[0].ID, err)
		}
	})

	t.Run("idempotency", func(t *testing.T) {
		s := newStore(t, r)
		first := starling.Post{ID: "A", Author: "alice", Text: "one"}
		got, seen, err := s.ReserveIdempotent(ctx, "alice", "k1", first)
		if err != nil || seen || got != first {
			t.Fatalf("first: %+v %v %v", got, seen, err)
		}
		got, seen, err = s.ReserveIdempotent(ctx, "alice", "k1", starling.Post{ID: "B", Author: "alice", Text: "two"})
		if err != nil || !seen || got.ID != "A" || got.Text != "one" {
			t.Fatalf("retry: %+v %v %v", got, seen, err)
		}
		if _, seen, _ := s.ReserveIdempotent(ctx, "carol", "k1", first); seen {
			t.Fatal("idempotency keys leak between authors")
		}
	})

}

// TestIdempotencyKeysCannotNameInternalKeys: a client's key ending in
// ":done" once named another key's "published" marker, so a first request
// with it was answered as a retry of nothing. Markers now have a family of
// their own.
func TestIdempotencyKeysCannotNameInternalKeys(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, testenv.StartRedis(t))
	first := starling.Post{ID: "A", Author: "alice", Text: "one"}
	if _, _, err := s.ReserveIdempotent(ctx, "alice", "k", first); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkIdempotentDone(ctx, "alice", "k"); err != nil {
		t.Fatal(err)
	}
	other := starling.Post{ID: "B", Author: "alice", Text: "two"}
	got, seen, err := s.ReserveIdempotent(ctx, "alice", "k:done", other)
	if err != nil || seen || got.ID != "B" {
		t.Fatalf("key %q after key %q was marked done: %+v seen=%v %v", "k:done", "k", got, seen, err)
	}
	if done, err := s.IdempotentDone(ctx, "alice", "k:done"); err != nil || done {
		t.Fatalf("key %q reads as published: %v %v", "k:done", done, err)
	}
}
