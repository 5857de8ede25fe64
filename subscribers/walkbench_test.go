package subscribers

import (
	"context"
	"testing"

	"starling.dev/starling"
	"starling.dev/starling/fanout"
	"starling.dev/starling/internal/testenv"
)

// The follower walk's speed on a real redis-server with 100,000 followers
// of one author (unknown presence, so everyone is delivered):
//
//	go test -run '^$' -bench 'WalkFollowers|FanoutWalk' -benchtime 5x ./subscribers
//
// BenchmarkWalkFollowers is the walk alone; BenchmarkFanoutWalk is the
// fanout stage over it with a sink that stores at once, so it adds the
// progress saved after each page and the retraction check before it.

func benchFollowers(b *testing.B) *RedisStore {
	b.Helper()
	r := testenv.StartRedis(b)
	s := NewRedisStore(r.Client(b), "starling:")
	jids := make([]string, 0, 1000)
	for i := 0; i < 100_000; i += 1000 {
		jids = jids[:0]
		for j := i; j < i+1000; j++ {
			jids = append(jids, follower(j))
		}
		if _, err := s.AddFollowers(context.Background(), "alice", jids); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

func BenchmarkWalkFollowers(b *testing.B) {
	s := benchFollowers(b)
	ctx := context.Background()
	seen := 0
	for b.Loop() {
		err := s.WalkFollowers(ctx, "alice", "", fanout.BatchSize, false, func(p []string, _ string) error {
			seen += len(p)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(seen)/b.Elapsed().Seconds(), "followers/s")
}

// storedSink stores every batch at once.
type storedSink struct{}

func (storedSink) PublishBatch(context.Context, fanout.Batch) (fanout.Pending, error) {
	return memPending{}, nil
}

// noRetractions reports no post as retracted, after a round trip as the
// accounts store would make.
type noRetractions struct{ s *RedisStore }

func (n noRetractions) Retracted(ctx context.Context, author, id string) (bool, error) {
	c, err := n.s.rdb.Exists(ctx, n.s.keys.Retraction(author, id)).Result()
	return c == 1, err
}

func BenchmarkFanoutWalk(b *testing.B) {
	s := benchFollowers(b)
	ctx := context.Background()
	fan := fanout.NewFanout(s, storedSink{}, nil, fanout.WithTracking(s, noRetractions{s}))
	posts := 0
	for b.Loop() {
		posts++
		post := starling.Post{ID: "01POST" + string(rune('A'+posts%26)) + string(rune('0'+posts/26)), Author: "alice"}
		if n, err := fan.Fan(ctx, post, nil); err != nil || n != 100_000/fanout.BatchSize {
			b.Fatalf("%d batches, %v", n, err)
		}
	}
	b.ReportMetric(float64(posts*100_000)/b.Elapsed().Seconds(), "followers/s")
}
