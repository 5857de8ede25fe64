package subscribers

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"starling.dev/starling/internal/testenv"
)

// TestProbeLeaseOneOfSeveralGateways: gateways on their own connections to
// one Redis take the probe lease at the same moment; exactly one gets it.
// Only its holder can release it, and it can be taken again once released
// or expired.
func TestProbeLeaseOneOfSeveralGateways(t *testing.T) {
	r := testenv.StartRedis(t)
	prefix := testenv.Prefix(t)
	ctx := context.Background()
	const gateways = 4
	var won atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	var winner atomic.Value
	for i := range gateways {
		s := NewRedisStore(r.Client(t), prefix)
		holder := fmt.Sprintf("link%d", i)
		wg.Go(func() {
			<-start
			ok, err := s.TakeProbeLease(ctx, holder, time.Second)
			if err != nil {
				t.Error(err)
			}
			if ok {
				won.Add(1)
				winner.Store(holder)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := won.Load(); n != 1 {
		t.Fatalf("%d of %d gateways took the lease, want 1", n, gateways)
	}
	s := NewRedisStore(r.Client(t), prefix)
	ttl, err := r.Client(t).PTTL(ctx, s.keys.ProbeLease()).Result()
	if err != nil || ttl <= 0 || ttl > time.Second {
		t.Fatalf("lease TTL %s (%v), want up to 1 s", ttl, err)
	}
	testenv.Eventually(t, 5*time.Second, func() bool {
		ok, err := s.TakeProbeLease(ctx, "late", time.Minute)
		return err == nil && ok
	}, "the lease was not free again once expired")
	// The first holder, its lease expired, cannot release the new one.
	must(t, s.ReleaseProbeLease(ctx, winner.Load().(string)))
	if ok, err := s.TakeProbeLease(ctx, "other", time.Minute); err != nil || ok {
		t.Fatalf("a release by a former holder freed the lease (%v)", err)
	}
	must(t, s.ReleaseProbeLease(ctx, "late"))
	if ok, err := s.TakeProbeLease(ctx, "other", time.Minute); err != nil || !ok {
		t.Fatalf("the lease was not free once its holder released it (%v)", err)
	}
}
