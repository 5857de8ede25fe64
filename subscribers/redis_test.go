package subscribers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"starling.dev/starling"
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
		if n, err := s.FollowingCount(ctx, "bob@example.org"); err != nil || n != 1 {
			t.Fatalf("following count: %d %v", n, err)
		}
		// The followee index is a small hash, which Redis keeps as a listpack.
		if enc, err := s.rdb.ObjectEncoding(ctx, s.followingKey("bob@example.org")).Result(); err != nil || enc != "listpack" {
			t.Fatalf("g: encoding %q %v, want listpack", enc, err)
		}
		s.Unfollow(ctx, "carol", "bob@example.org")
		if n, err := s.rdb.Exists(ctx, s.followingKey("bob@example.org")).Result(); err != nil || n != 0 {
			t.Fatalf("empty g: key left behind: %d %v", n, err)
		}
		if n, err := s.FollowingCount(ctx, "bob@example.org"); err != nil || n != 0 {
			t.Fatalf("following count of nobody: %d %v", n, err)
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
		pages := 0
		err := s.ScanFollowers(ctx, "star", fanout.BatchSize, func(page []string) error {
			pages++
			for _, j := range page {
				seen[j] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != n {
			t.Fatalf("scan saw %d distinct followers, want %d", len(seen), n)
		}
		if pages < 2 {
			t.Fatalf("%d followers in %d page(s): SSCAN paging not exercised", n, pages)
		}
	})

	t.Run("scan skips paused, offline and unreachable followers", func(t *testing.T) {
		s := newStore(t, r)
		for _, j := range []string{"unknown@e", "online@e", "paused@e", "offline@e", "bouncing@e", "offline-ungranted@e"} {
			if _, err := s.Follow(ctx, "star", j); err != nil {
				t.Fatal(err)
			}
		}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		_, err := s.SetPresence(ctx, "online@e", "phone", true)
		must(err)
		must(s.SetPaused(ctx, "paused@e", true))
		must(s.Granted(ctx, "offline@e", "mb.example", true))
		_, err = s.SetPresence(ctx, "offline@e", "phone", true)
		must(err)
		_, err = s.SetPresence(ctx, "offline@e", "phone", false)
		must(err)
		// Unavailable without a grant proves nothing: we would never hear
		// that they are back.
		_, err = s.SetPresence(ctx, "offline-ungranted@e", "", false)
		must(err)
		for range BounceLimit {
			_, err = s.Bounced(ctx, "bouncing@e")
			must(err)
		}
		var got []string
		must(s.ScanFollowers(ctx, "star", 100, func(page []string) error {
			got = append(got, page...)
			return nil
		}))
		slices.Sort(got)
		if want := []string{"offline-ungranted@e", "online@e", "unknown@e"}; !slices.Equal(got, want) {
			t.Fatalf("deliverable %v, want %v", got, want)
		}
		// Coming online again clears "offline" and "unreachable".
		for _, j := range []string{"offline@e", "bouncing@e"} {
			_, err = s.SetPresence(ctx, j, "laptop", true)
			must(err)
			if st, _ := s.State(ctx, j); st.Presence != "on" || !st.Unreachable.IsZero() {
				t.Fatalf("%s after coming online: %+v", j, st)
			}
		}
	})
}
