package accounts

import (
	"context"
	"fmt"
	"testing"
	"time"

	"starling.dev/starling"
	"starling.dev/starling/fanout"
	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/subscribers"
)

// TestStoresOnRedisCluster runs both stores on a real 3-master Redis
// Cluster: every script and multi-key command they send must keep to one
// hash slot (or be a pipeline, which the cluster client splits by node), so
// an account, its posts, a follow, a fanout walk with follower states,
// progress, presence and a deletion all work.
func TestStoresOnRedisCluster(t *testing.T) {
	rc := testenv.StartRedisCluster(t, 3)
	rdb := rc.Client(t)
	ctx := context.Background()
	prefix := testenv.Prefix(t)
	graph := subscribers.NewRedisStore(rdb, prefix)
	acc, err := NewRedisStore(rdb, graph, RedisConfig{Prefix: prefix, RecentPosts: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := acc.CreateUser(ctx, "alice", "Alice", "h1", time.Now()); err != nil {
		t.Fatal(err)
	}
	const followers = 2000 // spread over every master by their g:<jid> keys
	for i := range followers {
		if _, err := graph.Follow(ctx, "alice", fmt.Sprintf("f%d@example.org", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := graph.SetPresence(ctx, "f7@example.org", "phone", true); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		if err := acc.RecordPost(ctx, starling.Post{ID: fmt.Sprintf("01J%023d", i), Author: "alice", Text: "hi"}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := acc.Profile(ctx, "alice")
	if err != nil || p.Followers != followers || p.Posts != 8 {
		t.Fatalf("profile %+v, %v", p, err)
	}
	seen := 0
	err = graph.WalkFollowers(ctx, "alice", "", fanout.BatchSize, false, func(jids []string, last string) error {
		seen += len(jids)
		return graph.SaveProgress(ctx, "alice", "01J", fanout.Progress{After: last, Next: 1})
	})
	if err != nil || seen != followers {
		t.Fatalf("walked %d of %d followers: %v", seen, followers, err)
	}
	if u, _, err := acc.UserByTokenHash(ctx, "h1"); err != nil || u != "alice" {
		t.Fatalf("token lookup: %q %v", u, err)
	}
	if err := acc.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if n, err := graph.FollowerCount(ctx, "alice"); err != nil || n != 0 {
		t.Fatalf("followers after deletion: %d %v", n, err)
	}
}
