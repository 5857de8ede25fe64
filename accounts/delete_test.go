package accounts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"starling.dev/starling"
	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/subscribers"
)

func TestDeleteUser(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	s := newStore(t, r)
	g := subscribers.NewRedisStore(s.rdb, s.cfg.Prefix)
	for _, u := range []string{"alice", "carol"} {
		if err := s.CreateUser(ctx, u, u, "hash-"+u, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	jids := make([]string, 2500)
	for i := range jids {
		jids[i] = fmt.Sprintf("f%d@example.org", i)
	}
	for i := 0; i < len(jids); i += 1000 {
		if _, err := g.AddFollowers(ctx, "alice", jids[i:min(i+1000, len(jids))]); err != nil {
			t.Fatal(err)
		}
	}
	g.Follow(ctx, "carol", jids[0])
	if err := s.RecordPost(ctx, starling.Post{ID: "01A", Author: "alice", Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "alice"); !errors.Is(err, starling.ErrUnknownUser) {
		t.Fatalf("second delete: %v", err)
	}
	if _, _, err := s.UserByTokenHash(ctx, "hash-alice"); !errors.Is(err, starling.ErrUnknownToken) {
		t.Fatalf("token of a deleted user: %v", err)
	}
	if f, _ := g.Following(ctx, jids[0]); !slices.Equal(f, []string{"carol"}) {
		t.Fatalf("following of %s = %v", jids[0], f)
	}
	if f, _ := g.Following(ctx, jids[2499]); len(f) != 0 {
		t.Fatalf("following of %s = %v", jids[2499], f)
	}
	if _, ok, _ := s.StatusByID(ctx, "01A"); ok {
		t.Fatal("post of a deleted user still found")
	}
	// Nothing of alice is left; carol is untouched.
	keys, err := s.rdb.Keys(ctx, s.cfg.Prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		for _, part := range []string{"{alice}", "hash-alice", "01A"} {
			if strings.Contains(k, part) {
				t.Fatalf("key %s survived", k)
			}
		}
	}
	if p, err := s.Profile(ctx, "carol"); err != nil || p.Followers != 1 {
		t.Fatalf("carol: %+v %v", p, err)
	}
	if err := s.CreateUser(ctx, "alice", "Alice again", "h", time.Now()); err != nil {
		t.Fatalf("username not free again: %v", err)
	}
	if p, _ := s.Profile(ctx, "alice"); p.Followers != 0 || p.Posts != 0 {
		t.Fatalf("new alice inherits %+v", p)
	}
}
