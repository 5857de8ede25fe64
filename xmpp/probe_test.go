package xmpp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
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
	c.probeAll(context.Background(), func(b []byte) error { out.Write(b); return nil })
	took := time.Since(start)
	if got := bytes.Count(out.Bytes(), []byte(`<presence type="probe" from="mb.example" to="`)); got != n {
		t.Fatalf("%d probes written, want %d", got, n)
	}
	if minimum := time.Duration(float64(n-probeBatch) / rate * float64(time.Second)); took < minimum {
		t.Fatalf("%d probes in %s: faster than %v/s", n, took, rate)
	}
}
