package subscribers

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"starling.dev/starling/fanout"
	"starling.dev/starling/internal/testenv"
)

func newStore(t *testing.T, r *testenv.Redis) *RedisStore {
	t.Helper()
	return NewRedisStore(r.Client(t), testenv.Prefix(t))
}

func TestRedisStore(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()

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
		if enc, err := s.rdb.ObjectEncoding(ctx, s.keys.Following("bob@example.org")).Result(); err != nil || enc != "listpack" {
			t.Fatalf("g: encoding %q %v, want listpack", enc, err)
		}
		s.Unfollow(ctx, "carol", "bob@example.org")
		if n, err := s.rdb.Exists(ctx, s.keys.Following("bob@example.org")).Result(); err != nil || n != 0 {
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
		err := s.WalkFollowers(ctx, "star", "", fanout.BatchSize, false, func(page []string, _ string) error {
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
			t.Fatalf("%d followers in %d page(s): paging not exercised", n, pages)
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
		must(s.WalkFollowers(ctx, "star", "", 100, false, func(page []string, _ string) error {
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
