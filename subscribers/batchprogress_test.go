package subscribers

import (
	"context"
	"testing"

	"starling.dev/starling/internal/testenv"
)

// TestBatchProgress: a batch's confirmed count starts at 0, only grows and
// expires on its own; batches do not share counts.
func TestBatchProgress(t *testing.T) {
	r := testenv.StartRedis(t)
	s := newStore(t, r)
	ctx := context.Background()
	const batch, other = "01JBP.3.abc", "01JBP.3.xyz"

	confirmed := func(id string) int {
		t.Helper()
		n, err := s.Confirmed(ctx, "alice", id)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := confirmed(batch); n != 0 {
		t.Fatalf("unsaved batch: %d confirmed, want 0", n)
	}
	must(t, s.SetConfirmed(ctx, "alice", batch, 150, false))
	must(t, s.SetConfirmed(ctx, "alice", batch, 100, false)) // an older attempt, late: ignored
	if n := confirmed(batch); n != 150 {
		t.Fatalf("%d confirmed, want 150", n)
	}
	if n := confirmed(other); n != 0 {
		t.Fatalf("another batch: %d confirmed, want 0", n)
	}
	ttl, err := r.Client(t).TTL(ctx, s.keys.BatchProgress("alice", batch)).Result()
	if err != nil || ttl <= 0 || ttl > batchProgressTTL {
		t.Fatalf("TTL %s (%v), want up to %s", ttl, err, batchProgressTTL)
	}
	must(t, s.SetConfirmed(ctx, "alice", batch, 500, true)) // sent whole
	if n := confirmed(batch); n != 500 {
		t.Fatalf("%d confirmed, want 500", n)
	}
	ttl, err = r.Client(t).TTL(ctx, s.keys.BatchProgress("alice", batch)).Result()
	if err != nil || ttl <= 0 || ttl > batchSentTTL {
		t.Fatalf("TTL of a batch sent whole %s (%v), want up to %s", ttl, err, batchSentTTL)
	}
}
