package subscribers

import (
	"context"
	"slices"
	"testing"

	"starling.dev/starling/internal/testenv"
)

func TestAddFollowers(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	s := newStore(t, r)
	n, err := s.AddFollowers(ctx, "alice", []string{"a@x.org", "b@x.org", "a@x.org"})
	if err != nil || n != 2 {
		t.Fatalf("AddFollowers = %d %v", n, err)
	}
	if n, _ := s.AddFollowers(ctx, "alice", []string{"b@x.org", "c@x.org"}); n != 1 {
		t.Fatalf("second AddFollowers = %d, want 1", n)
	}
	if n, _ := s.AddFollowers(ctx, "alice", nil); n != 0 {
		t.Fatal("empty batch added something")
	}
	if f, _ := s.Following(ctx, "c@x.org"); !slices.Equal(f, []string{"alice"}) {
		t.Fatalf("followee index: %v", f)
	}
	if _, err := s.rdb.ZScore(ctx, s.keys.Followers("alice"), "a@x.org").Result(); err != nil {
		t.Fatal("a@x.org is not in the follower set")
	}
}
