package xmpp

import (
	"context"
	"testing"
	"time"
)

// TestPacerFollowsTheServer: the window settles at the target delay's worth
// of the confirmed rate, within its bounds, and acquire blocks while it is
// full.
func TestPacerFollowsTheServer(t *testing.T) {
	clock := time.Unix(0, 0)
	p := newPacer(20*time.Millisecond, 100, 2000)
	p.now = func() time.Time { return clock }
	ctx := context.Background()
	// A server confirming 5,000 stanzas/s: 50 every 10 ms.
	for range 100 {
		if err := p.acquire(ctx, 50); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(10 * time.Millisecond)
		p.release(50, true)
	}
	if p.window != 100 {
		t.Fatalf("window %d at 5k/s, want 100 (5,000/s × 20 ms)", p.window)
	}
	// A fast server: 300,000/s, capped at the maximum.
	for range 100 {
		_ = p.acquire(ctx, 3000)
		clock = clock.Add(10 * time.Millisecond)
		p.release(3000, true)
	}
	if p.window != 2000 {
		t.Fatalf("window %d at 300k/s, want the 2,000 cap", p.window)
	}
	if c := p.chunk(); c != 250 {
		t.Fatalf("chunk %d, want 250", c)
	}

	// Full: a second acquire waits until the first is released.
	_ = p.acquire(ctx, 2000)
	got := make(chan error, 1)
	go func() { got <- p.acquire(ctx, 10) }()
	select {
	case err := <-got:
		t.Fatalf("acquire on a full window returned %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	p.release(2000, false)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("acquire still blocked after the window was released")
	}
	p.release(10, false)
	// A cancelled context ends the wait.
	_ = p.acquire(ctx, 2000)
	cctx, cancel := context.WithCancel(ctx)
	go func() { got <- p.acquire(cctx, 10) }()
	cancel()
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("acquire ignored its context")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("acquire still blocked after its context ended")
	}
}
