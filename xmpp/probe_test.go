package xmpp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// probeStore serves n probe targets in HSCAN-like pages.
type probeStore struct {
	fakeGraph
	n int
}

func (p *probeStore) ProbeTargets(_ context.Context, cursor uint64, count int) ([][2]string, uint64, error) {
	var out [][2]string
	end := min(int(cursor)+count, p.n)
	for i := int(cursor); i < end; i++ {
		out = append(out, [2]string{fmt.Sprintf("f%d@example.org", i), "mb.example"})
	}
	if end == p.n {
		return out, 0, nil
	}
	return out, uint64(end), nil
}

// TestProbesAreRateLimited: every follower who granted us their presence is
// probed once, and never faster than the configured rate. (A lower bound on
// the time taken, so a slow machine cannot make it fail.)
func TestProbesAreRateLimited(t *testing.T) {
	const n, rate = 400, 2000.0 // 400 probes at 2,000/s: at least 175 ms
	c, err := New(&probeStore{n: n}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)),
		Config{Domain: "mb.example", Addr: "127.0.0.1:1", Secret: "s", ProbeRate: rate})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	start := time.Now()
	c.probeAll(context.Background(), "link", func(b []byte) error { out.Write(b); return nil })
	took := time.Since(start)
	if got := bytes.Count(out.Bytes(), []byte(`<presence type="probe" from="mb.example" to="`)); got != n {
		t.Fatalf("%d probes written, want %d", got, n)
	}
	if minimum := time.Duration(float64(n-probeBatch) / rate * float64(time.Second)); took < minimum {
		t.Fatalf("%d probes in %s: faster than %v/s", n, took, rate)
	}
}

// sharedLease is one probe lease for several stores, as Redis keeps it for
// several gateways; err makes it unavailable.
type sharedLease struct {
	mu     sync.Mutex
	holder string
	until  time.Time
	err    error
}

type leasedStore struct {
	*probeStore
	lease *sharedLease
}

func (s leasedStore) TakeProbeLease(_ context.Context, holder string, ttl time.Duration) (bool, error) {
	s.lease.mu.Lock()
	defer s.lease.mu.Unlock()
	if s.lease.err != nil {
		return false, s.lease.err
	}
	if time.Now().Before(s.lease.until) {
		return false, nil
	}
	s.lease.holder, s.lease.until = holder, time.Now().Add(ttl)
	return true, nil
}

func (s leasedStore) ReleaseProbeLease(_ context.Context, holder string) error {
	s.lease.mu.Lock()
	defer s.lease.mu.Unlock()
	if s.lease.holder == holder {
		s.lease.until = time.Time{}
	}
	return s.lease.err
}

// TestProbesOfReplicasAreNotMultiplied: two gateways sharing a store that
// keeps a probe lease reconnect together; one of them probes. The lease
// outlives their probing but not the link that took it: released, the next
// link probes at once (a restarted gateway, a standby taking over). Without
// the lease (the store failing) each probes rather than none.
func TestProbesOfReplicasAreNotMultiplied(t *testing.T) {
	const n = 60
	lease := &sharedLease{}
	comps := make([]*Component, 2)
	for i := range comps {
		c, err := New(leasedStore{&probeStore{n: n}, lease}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)),
			Config{Domain: "mb.example", Addr: "127.0.0.1:1", Secret: "s", ProbeRate: 100000})
		if err != nil {
			t.Fatal(err)
		}
		comps[i] = c
	}
	// probes runs both components' probes at once, as links a and b.
	probes := func(a, b string) int {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var out bytes.Buffer
		for i, holder := range []string{a, b} {
			wg.Go(func() {
				comps[i].probeAll(context.Background(), holder, func(b []byte) error {
					mu.Lock()
					defer mu.Unlock()
					out.Write(b)
					return nil
				})
			})
		}
		wg.Wait()
		return bytes.Count(out.Bytes(), []byte(`type="probe"`))
	}
	if got := probes("a1", "b1"); got != n {
		t.Fatalf("two gateways reconnecting together sent %d probes, want %d (one run)", got, n)
	}
	if got := probes("a2", "b2"); got != 0 {
		t.Fatalf("within the lease, %d probes, want none", got)
	}
	lease.mu.Lock()
	holder := lease.holder
	lease.mu.Unlock()
	comps[0].releaseProbeLease("someone else") // not the holder: kept
	if got := probes("a3", "b3"); got != 0 {
		t.Fatalf("after a release by a link without the lease, %d probes, want none", got)
	}
	comps[0].releaseProbeLease(holder) // the link that probed ends
	if got := probes("a4", "b4"); got != n {
		t.Fatalf("after the lease was released, %d probes, want %d", got, n)
	}
	lease.mu.Lock()
	lease.until, lease.err = time.Time{}, errors.New("redis down")
	lease.mu.Unlock()
	if got := probes("a5", "b5"); got != 2*n {
		t.Fatalf("without a lease the gateways sent %d probes, want %d (each probes)", got, 2*n)
	}
}
