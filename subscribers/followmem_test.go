package subscribers

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"starling.dev/starling/internal/testenv"
)

// BenchmarkFollowEdgeMemory measures Redis memory per follow edge: 100k
// JIDs following one author each, loaded with AddFollowers as the import
// does, on a real redis-server. Each iteration loads a fresh server:
//
//	go test -run '^$' -bench FollowEdgeMemory -benchtime 1x ./subscribers
func BenchmarkFollowEdgeMemory(b *testing.B) {
	for b.Loop() {
		followEdgeMemory(b)
	}
}

func followEdgeMemory(t *testing.B) {
	r := testenv.StartRedis(t)
	rdb := r.Client(t)
	ctx := context.Background()
	s := NewRedisStore(rdb, "starling:")
	used := func() int64 {
		t.Helper()
		info, err := rdb.Info(ctx, "memory").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		t.Fatal("no used_memory")
		return 0
	}
	const n, batch = 100_000, 1000
	before := used()
	jids := make([]string, 0, batch)
	for i := 0; i < n; i += batch {
		jids = jids[:0]
		for j := i; j < i+batch; j++ {
			jids = append(jids, fmt.Sprintf("follower%07d@example.org", j)) // 27 bytes
		}
		if _, err := s.AddFollowers(ctx, "alice", jids); err != nil {
			t.Fatal(err)
		}
	}
	total := used() - before
	fset, err := rdb.MemoryUsage(ctx, s.keys.Followers("alice"), 0).Result()
	if err != nil {
		t.Fatal(err)
	}
	one, err := rdb.MemoryUsage(ctx, s.keys.Following("follower0000042@example.org"), 0).Result()
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := rdb.ObjectEncoding(ctx, s.keys.Following("follower0000042@example.org")).Result()
	t.Logf("%d edges: used_memory +%d B = %.1f B/edge; f:{alice} %d B = %.1f B/edge; the rest (g: index) %.1f B/edge; MEMORY USAGE of one g: key %d B (%s)",
		n, total, float64(total)/n, fset, float64(fset)/n, float64(total-fset)/n, one, enc)
	t.ReportMetric(float64(total)/n, "B/edge")
	t.ReportMetric(float64(total-fset)/n, "B/edge-g-index")
}
