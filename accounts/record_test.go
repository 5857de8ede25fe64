package accounts

import (
	"context"
	"testing"
	"time"

	"starling.dev/starling"
	"starling.dev/starling/internal/testenv"
)

// TestRecordPostAfterDeletion: the API and the gateway both record every
// post, in either order; a record that comes after the post's deletion
// began (its retraction reserved) must not bring it back.
func TestRecordPostAfterDeletion(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, testenv.StartRedis(t))
	if err := s.CreateUser(ctx, "alice", "Alice", "h", time.Now()); err != nil {
		t.Fatal(err)
	}
	post := starling.Post{ID: "01JPOST0000000000000000000", Author: "alice", Text: "oops"}
	if err := s.RecordPost(ctx, post); err != nil {
		t.Fatal(err)
	}
	retraction := starling.Post{ID: "01JRETRACT0000000000000000", Author: "alice", Retracts: post.ID}
	if _, _, err := s.ReserveRetraction(ctx, "alice", post.ID, retraction); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.DeletePost(ctx, "alice", post.ID); err != nil || !ok {
		t.Fatalf("delete: %v, %v", ok, err)
	}
	if err := s.RecordPost(ctx, post); err != nil { // a late record: the pipeline's retry
		t.Fatal(err)
	}
	if _, found, err := s.StatusByID(ctx, post.ID); err != nil || found {
		t.Fatalf("a deleted post came back: found %v, %v", found, err)
	}
	if prof, err := s.Profile(ctx, "alice"); err != nil || prof.Posts != 0 {
		t.Fatalf("profile %+v, %v; want 0 posts", prof, err)
	}
}
