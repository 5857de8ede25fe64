package ratelimit

import (
	"strconv"
	"testing"
	"time"
)

// clock is a manual clock for the limiter.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newLimiter(t *testing.T, cfg Config) (*Limiter, *clock) {
	t.Helper()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	cfg.Now = c.now
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l, c
}

func TestBurstThenRefill(t *testing.T) {
	l, c := newLimiter(t, Config{Rate: 2, Burst: 3})
	for i := range 3 {
		if d := l.Take("a"); d.Verdict != Allowed {
			t.Fatalf("request %d within the burst: %+v", i, d)
		}
	}
	d := l.Take("a")
	if d.Verdict != Refused || d.RetryAfter != 500*time.Millisecond {
		t.Fatalf("past the burst: %+v, want Refused after 500ms", d)
	}
	if !l.Allow("b") {
		t.Fatal("another key shares the first key's bucket")
	}
	c.advance(499 * time.Millisecond)
	if l.Allow("a") {
		t.Fatal("allowed before a token refilled")
	}
	c.advance(time.Millisecond)
	if !l.Allow("a") {
		t.Fatal("refused after a token refilled")
	}
	c.advance(time.Hour)
	for range 3 {
		if !l.Allow("a") {
			t.Fatal("a bucket refills to its burst, no further")
		}
	}
	if l.Allow("a") {
		t.Fatal("a bucket held more than its burst")
	}
}

func TestWarnOnceThenQuiet(t *testing.T) {
	l, c := newLimiter(t, Config{Rate: 1, Burst: 1})
	want := []Verdict{Allowed, Refused, RefusedAgain, RefusedAgain}
	for i, v := range want {
		if got := l.Take("bob@example.org").Verdict; got != v {
			t.Fatalf("take %d = %v, want %v", i, got, v)
		}
	}
	c.advance(time.Second)
	if got := l.Take("bob@example.org").Verdict; got != Allowed {
		t.Fatalf("after refill = %v", got)
	}
	if got := l.Take("bob@example.org").Verdict; got != Refused {
		t.Fatalf("a new refusal after an allowed request must warn again, got %v", got)
	}
}

func TestClockStepsBack(t *testing.T) {
	l, c := newLimiter(t, Config{Rate: 1, Burst: 1})
	l.Take("a")
	c.advance(-time.Hour)
	if l.Allow("a") {
		t.Fatal("a clock stepping back refilled the bucket")
	}
}

func TestMemoryIsBounded(t *testing.T) {
	t.Run("full buckets are swept", func(t *testing.T) {
		l, c := newLimiter(t, Config{Rate: 10, Burst: 2})
		for i := range 10 * minSweepAt {
			l.Take(strconv.Itoa(i))
			c.advance(time.Millisecond) // older keys refill meanwhile
		}
		if n := l.Len(); n > 2*minSweepAt {
			t.Fatalf("%d buckets kept, want at most %d", n, 2*minSweepAt)
		}
	})
	t.Run("busy keys past MaxKeys", func(t *testing.T) {
		l, _ := newLimiter(t, Config{Rate: 0.001, Burst: 5, MaxKeys: 100})
		for i := range 1000 {
			l.Take(strconv.Itoa(i))
			if n := l.Len(); n > 100 {
				t.Fatalf("%d buckets after %d keys; MaxKeys is 100", n, i+1)
			}
		}
	})
	t.Run("busy buckets survive a sweep", func(t *testing.T) {
		l, _ := newLimiter(t, Config{Rate: 0.001, Burst: 1, MaxKeys: 10_000})
		l.Take("busy")
		for i := range 2 * minSweepAt {
			l.Take(strconv.Itoa(i))
		}
		if l.Allow("busy") {
			t.Fatal("sweeping forgot a bucket that had not refilled")
		}
	})
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []Config{{}, {Rate: -1}, {Rate: 1, Burst: -1}, {Rate: 1, MaxKeys: -1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	if _, err := New(Config{Rate: 1}); err != nil {
		t.Fatal(err)
	}
}
