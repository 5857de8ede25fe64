package accounts

import (
	"context"
	"fmt"
	"testing"
	"time"

	"starling.dev/starling"
	"starling.dev/starling/internal/testenv"
)

func TestPostHistory(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	s := newStoreConfig(t, r, RedisConfig{RecentPosts: 5})
	if err := s.CreateUser(ctx, "alice", "Alice", "h", time.Now()); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 8)
	for i := range ids {
		ids[i] = fmt.Sprintf("01J%023d", i)
		if err := s.RecordPost(ctx, starling.Post{ID: ids[i], Author: "alice", Text: fmt.Sprint("post ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Recording again (a retry) neither duplicates nor counts twice.
	if err := s.RecordPost(ctx, starling.Post{ID: ids[7], Author: "alice", Text: "post 7"}); err != nil {
		t.Fatal(err)
	}
	wantIDs := func(got []starling.Post, want ...string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("got %d posts, want %v", len(got), want)
		}
		for i := range want {
			if got[i].ID != want[i] {
				t.Fatalf("post %d = %s, want %s", i, got[i].ID, want[i])
			}
		}
	}
	page, err := s.Statuses(ctx, "alice", "", 3)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(page, ids[7], ids[6], ids[5])
	page, _ = s.Statuses(ctx, "alice", ids[5], 10)
	wantIDs(page, ids[4], ids[3]) // only 5 kept
	if _, ok, err := s.StatusByID(ctx, ids[2]); ok || err != nil {
		t.Fatalf("trimmed post still found: %v %v", ok, err)
	}
	if p, ok, err := s.StatusByID(ctx, ids[3]); !ok || err != nil || p.Text != "post 3" {
		t.Fatalf("StatusByID = %+v %v %v", p, ok, err)
	}
	if prof, _ := s.Profile(ctx, "alice"); prof.Posts != 8 {
		t.Fatalf("posts = %d, want 8", prof.Posts)
	}

	if ok, err := s.DeletePost(ctx, "alice", ids[7]); !ok || err != nil {
		t.Fatalf("DeletePost = %v %v", ok, err)
	}
	if ok, _ := s.DeletePost(ctx, "alice", ids[7]); ok {
		t.Fatal("second DeletePost reported a deletion")
	}
	last, _ := s.RecentPosts(ctx, "alice", 1)
	wantIDs(last, ids[6])
	if _, ok, _ := s.StatusByID(ctx, ids[7]); ok {
		t.Fatal("deleted post still found")
	}
	// A deleted id still works as a cursor.
	page, _ = s.Statuses(ctx, "alice", ids[7], 2)
	wantIDs(page, ids[6], ids[5])
	if prof, _ := s.Profile(ctx, "alice"); prof.Posts != 7 {
		t.Fatalf("posts = %d after a deletion, want 7", prof.Posts)
	}
	if got, _ := s.RecentPosts(ctx, "nobody", 5); len(got) != 0 {
		t.Fatalf("posts of nobody: %v", got)
	}
	// A post of an author deleted meanwhile is not recorded.
	if err := s.RecordPost(ctx, starling.Post{ID: "01K", Author: "ghost"}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.UserExists(ctx, "ghost"); ok {
		t.Fatal("RecordPost created an account")
	}
}

func TestAccountChanges(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	s := newStore(t, r)
	if err := s.CreateUser(ctx, "alice", "Alice", "h1", time.Now()); err != nil {
		t.Fatal(err)
	}
	bio := "hello"
	prof, err := s.UpdateProfile(ctx, "alice", nil, &bio)
	if err != nil || prof.Bio != "hello" || prof.DisplayName != "Alice" {
		t.Fatalf("UpdateProfile = %+v %v", prof, err)
	}
	if _, err := s.UpdateProfile(ctx, "bob", &bio, nil); err != starling.ErrUnknownUser {
		t.Fatalf("UpdateProfile of nobody: %v", err)
	}
	if err := s.RotateToken(ctx, "alice", "h2"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.UserByTokenHash(ctx, "h1"); err != starling.ErrUnknownToken {
		t.Fatalf("old token: %v", err)
	}
	if u, name, err := s.UserByTokenHash(ctx, "h2"); u != "alice" || name != "Alice" || err != nil {
		t.Fatalf("new token: %q %q %v", u, name, err)
	}
	if err := s.RotateToken(ctx, "bob", "h3"); err != starling.ErrUnknownUser {
		t.Fatalf("rotate for nobody: %v", err)
	}
	if _, _, err := s.UserByTokenHash(ctx, "h3"); err != starling.ErrUnknownToken {
		t.Fatalf("token of nobody: %v", err)
	}
	// A t: key the account does not name (a crash between the writes) is no token.
	if err := s.rdb.Set(ctx, s.keys.Token("h1"), "alice", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.UserByTokenHash(ctx, "h1"); err != starling.ErrUnknownToken {
		t.Fatalf("stale token key: %v", err)
	}
}
