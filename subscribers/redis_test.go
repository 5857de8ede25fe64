package subscribers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"starling.dev/starling/fanout"
	"starling.dev/starling/internal/testenv"
)

func newStore(t *testing.T, r *testenv.Redis) *RedisStore {
	t.Helper()
	s, err := NewRedisStore(r.Client(t), RedisConfig{Prefix: testenv.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRedisStore(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()

	t.Run("accounts", func(t *testing.T) {
		s := newStore(t, r)
		now := time.Now()
		if err := s.CreateUser(ctx, "alice", "Alice", "hash1", now); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateUser(ctx, "alice", "Other", "hash2", now); !errors.Is(err, fanout.ErrUserExists) {
			t.Fatalf("second create: %v", err)
		}
		if u, err := s.UserByTokenHash(ctx, "hash1"); err != nil || u != "alice" {
			t.Fatalf("token lookup: %q %v", u, err)
		}
		if _, err := s.UserByTokenHash(ctx, "hash2"); !errors.Is(err, fanout.ErrUnknownToken) {
			t.Fatalf("unknown token: %v", err)
		}
		if _, err := s.Profile(ctx, "bob"); !errors.Is(err, fanout.ErrUnknownUser) {
			t.Fatalf("unknown profile: %v", err)
		}
		for i := range 25 {
			if err := s.RecordPost(ctx, fanout.Post{ID: fmt.Sprintf("%02d", i), Author: "alice", Text: "t"}); err != nil {
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
		first := fanout.Post{ID: "A", Author: "alice", Text: "one"}
		got, seen, err := s.ReserveIdempotent(ctx, "alice", "k1", first)
		if err != nil || seen || got != first {
			t.Fatalf("first: %+v %v %v", got, seen, err)
		}
		got, seen, err = s.ReserveIdempotent(ctx, "alice", "k1", fanout.Post{ID: "B", Author: "alice", Text: "two"})
		if err != nil || !seen || got.ID != "A" || got.Text != "one" {
			t.Fatalf("retry: %+v %v %v", got, seen, err)
		}
		if _, seen, _ := s.ReserveIdempotent(ctx, "carol", "k1", first); seen {
			t.Fatal("idempotency keys leak between authors")
		}
	})

	t.Run("graph", func(t *testing.T) {
		s := newStore(t, r)
		if added, err := s.Follow(ctx, "alice", "bob@example.org"); err != nil || !added {
			t.Fatalf("follow: %v %v", added, err)
		}
		if added, _ := s.Follow(ctx, "alice", "bob@example.org"); added {
			t.Fatal("second follow reported as new")
		}
		s.Follow(ctx, "carol", "bob@example.org")
		if f, err := s.Following(ctx, "bob@example.org"); err != nil || !slices.Equal(f, []string{"alice", "carol"}) {
			t.Fatalf("following: %v %v", f, err)
		}
		if removed, _ := s.Unfollow(ctx, "alice", "bob@example.org"); !removed {
			t.Fatal("unfollow reported nothing removed")
		}
		if removed, _ := s.Unfollow(ctx, "alice", "bob@example.org"); removed {
			t.Fatal("second unfollow reported a removal")
		}
		if f, _ := s.Following(ctx, "bob@example.org"); !slices.Equal(f, []string{"carol"}) {
			t.Fatalf("following after unfollow: %v", f)
		}
	})

	t.Run("follower pages cover every follower", func(t *testing.T) {
		s := newStore(t, r)
		const n = 2345
		want := make([]string, n)
		for i := range want {
			want[i] = fmt.Sprintf("f%d@example.org", i)
			if _, err := s.Follow(ctx, "star", want[i]); err != nil {
				t.Fatal(err)
			}
		}
		seen := map[string]bool{}
		var cursor uint64
		pages := 0
		var buf []string
		for {
			var err error
			buf, cursor, err = s.FollowerPage(ctx, "star", cursor, fanout.BatchSize, buf[:0])
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, j := range buf {
				seen[j] = true
			}
			if cursor == 0 {
				break
			}
		}
		if len(seen) != n {
			t.Fatalf("scan saw %d distinct followers, want %d", len(seen), n)
		}
		if pages < 2 {
			t.Fatalf("%d followers in %d page(s): SSCAN paging not exercised", n, pages)
		}
	})
}
