package subscribers

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

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
//
// The walk of every follower (all=true, as a retraction walks, so no
// states are read), pages of 500, with one follower set and with twelve
// shards: BenchmarkWalkAll on one redis-server (100,000 followers) and
// BenchmarkWalkCluster on a 3-master Redis Cluster (200,000):
//
//	go test -run '^$' -bench 'WalkAll|WalkCluster' -benchtime 30x -count 5 ./subscribers
//
// Measured on 2 cores shared with other work (load 5–6): on the cluster
// 3.6–4.0M members/s with one set, 2.8–3.5M with twelve shards (the
// client, not Redis, is the limit: one walk of one set cost its master
// 12–15 ms of ZRANGE time); on one server 3.3–4.6M and 3.9–4.8M.

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

// walkAll walks every follower of author, pages of 500, b.N times and
// reports the members walked per second.
func walkAll(b *testing.B, s *RedisStore, author string, followers int) {
	ctx := context.Background()
	seen := 0
	for b.Loop() {
		err := s.WalkFollowers(ctx, author, "", fanout.BatchSize, true, func(p []string, _ string) error {
			seen += len(p)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if seen != b.N*followers {
		b.Fatalf("walked %d followers in %d walks of %d", seen, b.N, followers)
	}
	b.ReportMetric(float64(seen)/b.Elapsed().Seconds(), "members/s")
}

func BenchmarkWalkAll(b *testing.B) {
	r := testenv.StartRedis(b)
	for _, shards := range []int{1, 12} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			s := NewRedisStore(r.Client(b), testenv.Prefix(b), WithFollowerShards(shards))
			loadShards(b, s, "alice", 100_000)
			walkAll(b, s, "alice", 100_000)
		})
	}
}

func BenchmarkWalkCluster(b *testing.B) {
	rc := testenv.StartRedisCluster(b, 3)
	rdb := rc.Client(b)
	for _, shards := range []int{1, 12} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			s := NewRedisStore(rdb, testenv.Prefix(b), WithFollowerShards(shards))
			loadShards(b, s, "alice", 200_000)
			walkAll(b, s, "alice", 200_000)
		})
	}
}

// loadShards writes n followers of author straight into its follower
// sets, without the followee index, which a walk does not read.
func loadShards(b *testing.B, s *RedisStore, author string, n int) {
	b.Helper()
	ctx := context.Background()
	byShard := make([][]redis.Z, s.shards)
	for i := range n {
		j := follower(i)
		k := followerShard(j, s.shards)
		byShard[k] = append(byShard[k], redis.Z{Member: j})
	}
	for k, members := range byShard {
		for len(members) > 0 {
			c := min(len(members), 10_000)
			if err := s.rdb.ZAdd(ctx, s.keys.FollowerShard(author, k), members[:c]...).Err(); err != nil {
				b.Fatal(err)
			}
			members = members[c:]
		}
	}
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

// BenchmarkFanoutPage is one page of a fanout's walk as the fanout stage
// makes it: 500 followers' states read in one pipeline with the next page's
// ZRANGE, on a real Redis. It reports the time and allocations per page
// and per follower.
func BenchmarkFanoutPage(b *testing.B) {
	s := benchFollowers(b)
	ctx := context.Background()
	// Cursors of successive pages, so that each iteration reads a page
	// in the middle of the set, not the same cached one.
	var cursors []string
	err := s.WalkFollowers(ctx, "alice", "", fanout.BatchSize, true, func(_ []string, last string) error {
		cursors = append(cursors, last)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	cursors = cursors[:len(cursors)-2] // each leaves a full page and the next
	pages, seen := 0, 0
	b.ReportAllocs()
	for b.Loop() {
		after := cursors[pages%len(cursors)]
		first := true
		err := s.WalkFollowers(ctx, "alice", after, fanout.BatchSize, false, func(p []string, _ string) error {
			if !first {
				return errStopWalk
			}
			first = false
			seen += len(p)
			return nil
		})
		if err != nil && err != errStopWalk {
			b.Fatal(err)
		}
		pages++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(seen), "ns/follower")
}

// errStopWalk ends a benchmark's walk after its first page.
var errStopWalk = fmt.Errorf("stop")
