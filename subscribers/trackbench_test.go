package subscribers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"starling.dev/starling/fanout"
	"starling.dev/starling/internal/testenv"
)

// The track lookup on a real redis-server: 100,000 JIDs each tracking 3
// of 10,000 words (about 30 trackers a word), posts of 40 distinct words
// of which 3 are tracked, by an author with no followers, so every
// recipient is a tracker:
//
//	go test -run '^$' -bench TrackLookup -benchtime 3s ./subscribers
//
// Per post: the match keys (fanout.MatchKeys), then the merged walk, whose
// first round trip reads every key's tracker set with the follower set.
// "lookup" walks as a retraction does (no states read: one round trip);
// "filtered" as a post does (a second round trip for the recipients'
// states); "parallel" is "filtered" from 4 goroutines, as the gateway's 4
// fanout workers would; "hot" adds to every post a word 10,000 JIDs track.
//
// Measured on 2 cores shared with other work (load about 2), -count 3:
// lookup 3,900–4,200 posts/s, 396 allocs and 50 KB a post; filtered
// 1,860–2,040 posts/s, 1,155 allocs; parallel 3,000–4,300 posts/s; hot
// 36–43 posts/s of 10,090 recipients each. docs/ARCHITECTURE.md ("Track,
// post by IM and mentions") quotes them.

const (
	benchTrackers      = 100_000
	benchWords         = 10_000
	benchWordsPerJID   = 3
	benchPostWords     = 40
	benchTrackedInPost = 3
	benchHotTrackers   = 10_000
)

func trackedWord(i int) string { return fmt.Sprintf("word%05d", i) }

// loadTrackers fills the index as Track would, with pipelines of 10,000
// writes: k:{word} and tk:{jid}.
func loadTrackers(b *testing.B, s *RedisStore) {
	b.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	for start := 0; start < benchTrackers; start += 2000 {
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := start; i < start+2000; i++ {
				jid := fmt.Sprintf("t%06d@trackers.example", i)
				for range benchWordsPerJID {
					w := trackedWord(rng.IntN(benchWords))
					p.ZAdd(ctx, s.keys.Trackers(w), redis.Z{Member: jid})
					p.SAdd(ctx, s.keys.Tracking(jid), w)
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range benchHotTrackers {
			p.ZAdd(ctx, s.keys.Trackers("hotword"), redis.Z{Member: fmt.Sprintf("h%06d@hot.example", i)})
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// benchPosts are posts of benchPostWords distinct words, benchTrackedInPost
// of them tracked, in mixed case and with punctuation.
func benchPosts(n int, hot bool) []string {
	rng := rand.New(rand.NewPCG(3, 4))
	posts := make([]string, n)
	for i := range posts {
		var sb strings.Builder
		for j := range benchPostWords - benchTrackedInPost {
			fmt.Fprintf(&sb, "Plain%d%d, ", i, j)
		}
		for range benchTrackedInPost {
			fmt.Fprintf(&sb, "#%s ", strings.ToUpper(trackedWord(rng.IntN(benchWords))))
		}
		if hot {
			sb.WriteString("hotword!")
		}
		posts[i] = sb.String()
	}
	return posts
}

func BenchmarkTrackLookup(b *testing.B) {
	r := testenv.StartRedis(b)
	s := NewRedisStore(r.Client(b), testenv.Prefix(b))
	loadTrackers(b, s)
	ctx := context.Background()
	post := func(text string, all bool) (int, error) {
		n := 0
		a := fanout.Audience{Keys: fanout.MatchKeys(text)}
		err := s.WalkAudience(ctx, "alice", a, "", fanout.BatchSize, all, func(p []string, _ string) error {
			n += len(p)
			return nil
		})
		return n, err
	}
	run := func(name string, hot, all bool) {
		b.Run(name, func(b *testing.B) {
			posts := benchPosts(1000, hot)
			b.ReportAllocs()
			recipients, i := 0, 0
			for b.Loop() {
				n, err := post(posts[i%len(posts)], all)
				if err != nil {
					b.Fatal(err)
				}
				recipients += n
				i++
			}
			b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "posts/s")
			b.ReportMetric(float64(recipients)/float64(i), "recipients/post")
		})
	}
	run("lookup", false, true)
	run("filtered", false, false)
	run("hot", true, false)
	b.Run("parallel", func(b *testing.B) {
		posts := benchPosts(1000, false)
		var done, recipients atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(2) // 4 goroutines on 2 cores, as the 4 fanout workers
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				n, err := post(posts[i%len(posts)], false)
				if err != nil {
					b.Error(err)
					return
				}
				recipients.Add(int64(n))
				done.Add(1)
				i++
			}
		})
		b.ReportMetric(float64(done.Load())/b.Elapsed().Seconds(), "posts/s")
		b.ReportMetric(float64(recipients.Load())/float64(max(1, done.Load())), "recipients/post")
	})
}

// BenchmarkAudienceWalk is the cost of the merge for a big author: her
// 100,000 followers walked alone (WalkFollowers) and merged with a post's
// 40 match keys, none of them tracked (WalkAudience), as a retraction
// walks (no states read), one follower set and twelve shards.
//
//	go test -run '^$' -bench AudienceWalk -benchtime 20x ./subscribers
func BenchmarkAudienceWalk(b *testing.B) {
	r := testenv.StartRedis(b)
	keys := fanout.MatchKeys(benchPosts(1, false)[0])
	for _, shards := range []int{1, 12} {
		s := NewRedisStore(r.Client(b), testenv.Prefix(b)+fmt.Sprint(shards), WithFollowerShards(shards))
		loadShards(b, s, "alice", 100_000)
		b.Run(fmt.Sprintf("followers/shards=%d", shards), func(b *testing.B) { walkAll(b, s, "alice", 100_000) })
		b.Run(fmt.Sprintf("audience/shards=%d", shards), func(b *testing.B) {
			ctx := context.Background()
			seen := 0
			for b.Loop() {
				err := s.WalkAudience(ctx, "alice", fanout.Audience{Keys: keys}, "", fanout.BatchSize, true, func(p []string, _ string) error {
					seen += len(p)
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			if seen != b.N*100_000 {
				b.Fatalf("walked %d in %d walks", seen, b.N)
			}
			b.ReportMetric(float64(seen)/b.Elapsed().Seconds(), "members/s")
		})
	}
}
