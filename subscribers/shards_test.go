package subscribers

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"starling.dev/starling"
	"starling.dev/starling/fanout"
	"starling.dev/starling/internal/testenv"
)

// shardedStore is a store with n follower shards under a prefix of its own.
func shardedStore(t *testing.T, rdb redis.UniversalClient, n int) *RedisStore {
	t.Helper()
	return NewRedisStore(rdb, testenv.Prefix(t), WithFollowerShards(n))
}

// oddJIDs are followers whose bytes test the order: prefixes of one
// another, upper case before lower, bytes above ASCII, one of them the
// first members' common prefix.
var oddJIDs = []string{"a@x", "a@x.org", "A@x.org", "f0@example.org", "ünï@example.org", "z@x", "zz@x", "~@x", "f00100@example.org0"}

// referenceFollowers adds n numbered followers and oddJIDs to author and
// returns them sorted as Redis sorts them.
func referenceFollowers(t *testing.T, s *RedisStore, author string, n int) []string {
	t.Helper()
	addFollowers(t, s, author, 0, n)
	if _, err := s.AddFollowers(context.Background(), author, oddJIDs); err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(oddJIDs)
	for i := range n {
		want = append(want, follower(i))
	}
	slices.Sort(want)
	return want
}

// walkPages walks author's followers (all of them) from after and returns
// the pages, each with the last JID it covered.
func walkPages(t *testing.T, s *RedisStore, author, after string, count int) (pages [][]string, lasts []string) {
	t.Helper()
	err := s.WalkFollowers(context.Background(), author, after, count, true, func(p []string, last string) error {
		if len(p) == 0 || p[len(p)-1] != last {
			t.Fatalf("page of %d ends with %q, last %q", len(p), p[len(p)-1:], last)
		}
		pages = append(pages, slices.Clone(p))
		lasts = append(lasts, last)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pages, lasts
}

// TestShardedWalk walks 3,000 followers (and a few odd JIDs) with one shard
// and with seven: the pages are those of the reference sort cut every
// count JIDs; walks resumed from every cursor, and from cursors that are
// no member, cut the same pages; FollowerPage cuts the same pages as the
// walk; the set of one shard is f:{<user>} and the others spread evenly.
func TestShardedWalk(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	const n, count = 3000, 100
	for _, shards := range []int{1, 7} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			s := shardedStore(t, r.Client(t), shards)
			want := referenceFollowers(t, s, "star", n)
			pages, lasts := walkPages(t, s, "star", "", count)
			if got := slices.Concat(pages...); !slices.Equal(got, want) {
				t.Fatalf("walk gave %d followers, not the %d of the reference sort (first difference at %d)", len(got), len(want), firstDiff(got, want))
			}
			// The pages one set cuts: the first count after each cursor.
			if chunks := slices.Collect(slices.Chunk(want, count)); !slices.EqualFunc(pages, chunks, slices.Equal) {
				t.Fatalf("%d pages differ from the reference sort's %d pages of %d", len(pages), len(chunks), count)
			}

			// Resuming from any cursor cuts the pages the walk cut.
			for i, last := range lasts {
				rest, _ := walkPages(t, s, "star", last, count)
				if !slices.EqualFunc(rest, pages[i+1:], slices.Equal) {
					t.Fatalf("resumed after page %d (%q): %d pages differ from the walk's %d", i, last, len(rest), len(pages)-i-1)
				}
			}
			// A cursor need not be a member (the follower behind it left).
			for _, after := range []string{"f01234x@example.org", "b", "zzz@x", "\xff"} {
				rest, _ := walkPages(t, s, "star", after, count)
				i, _ := slices.BinarySearch(want, after+"\x00")
				if got := slices.Concat(rest...); !slices.Equal(got, want[i:]) {
					t.Fatalf("walk after %q: %d followers, want %d", after, len(got), len(want)-i)
				}
			}

			// FollowerPage cuts the same pages, and its cursors chain.
			cursor, i := "", 0
			for {
				page, next, err := s.FollowerPage(ctx, "star", cursor, count, nil)
				if err != nil {
					t.Fatal(err)
				}
				if i >= len(pages) || !slices.Equal(page, pages[i]) {
					t.Fatalf("FollowerPage %d differs from the walk's", i)
				}
				i++
				if next == "" {
					break
				}
				cursor = next
			}
			if i != len(pages) {
				t.Fatalf("FollowerPage gave %d pages, the walk %d", i, len(pages))
			}

			// Shard 0 is f:{star}; with several, every shard holds about its
			// share.
			for k := range shards {
				c, err := s.rdb.ZCard(ctx, s.keys.FollowerShard("star", k)).Result()
				if err != nil || c < int64(len(want)/shards/2) || c > int64(2*len(want)/shards) {
					t.Errorf("shard %d holds %d of %d followers (%v)", k, c, len(want), err)
				}
			}
			if c, _ := s.rdb.ZCard(ctx, s.keys.Followers("star")).Result(); c == 0 {
				t.Error("f:{star} is not shard 0")
			}
		})
	}
}

// TestShardedWalkSkewed: a run of 500 followers in JID order that all
// live in one of seven shards, so that pages of 100 hold far more of that
// shard than its margin (30): the walk reads more from it before cutting
// each page, and the pages are still the reference sort's.
func TestShardedWalkSkewed(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	s := shardedStore(t, r.Client(t), 7)
	want := referenceFollowers(t, s, "star", 1000)
	var run []string
	for i := 0; len(run) < 500; i++ {
		if j := fmt.Sprintf("m%06d@example.org", i); followerShard(j, 7) == 3 {
			run = append(run, j)
		}
	}
	if _, err := s.AddFollowers(ctx, "star", run); err != nil {
		t.Fatal(err)
	}
	want = append(want, run...)
	slices.Sort(want)
	pages, lasts := walkPages(t, s, "star", "", 100)
	if chunks := slices.Collect(slices.Chunk(want, 100)); !slices.EqualFunc(pages, chunks, slices.Equal) {
		t.Fatalf("%d pages differ from the reference sort's %d", len(pages), len(chunks))
	}
	for i, last := range lasts {
		if rest, _ := walkPages(t, s, "star", last, 100); !slices.EqualFunc(rest, pages[i+1:], slices.Equal) {
			t.Fatalf("resumed after page %d: pages differ", i)
		}
	}
	page, _, err := s.FollowerPage(ctx, "star", base64.RawURLEncoding.EncodeToString([]byte(lasts[10])), 100, nil)
	if err != nil || !slices.Equal(page, pages[11]) {
		t.Fatalf("FollowerPage in the run: %v", err)
	}
}

// firstDiff is the first index where a and b differ.
func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestShardedGraph: with seven shards, follows, unfollows, AddFollowers
// (with repeats and JIDs already following), counts, the followee index and
// deleting every follower all act on the JID's own shard and on all of
// them.
func TestShardedGraph(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	s := shardedStore(t, r.Client(t), 7)
	addFollowers(t, s, "star", 0, 500)
	if n, err := s.FollowerCount(ctx, "star"); err != nil || n != 500 {
		t.Fatalf("count %d %v, want 500", n, err)
	}
	added, err := s.AddFollowers(ctx, "star", []string{follower(3), follower(499), follower(500), follower(501), follower(500)})
	if err != nil || added != 2 {
		t.Fatalf("AddFollowers over existing and repeated JIDs: %d %v, want 2", added, err)
	}
	if ok, err := s.Follow(ctx, "star", follower(7)); err != nil || ok {
		t.Fatalf("following again: %v %v", ok, err)
	}
	if ok, err := s.Follow(ctx, "star", "new@example.org"); err != nil || !ok {
		t.Fatalf("new follow: %v %v", ok, err)
	}
	if ok, err := s.Unfollow(ctx, "star", follower(42)); err != nil || !ok {
		t.Fatalf("unfollow: %v %v", ok, err)
	}
	if ok, _ := s.Unfollow(ctx, "star", follower(42)); ok {
		t.Fatal("second unfollow removed something")
	}
	if n, _ := s.FollowerCount(ctx, "star"); n != 502 {
		t.Fatalf("count %d, want 502", n)
	}
	// Each JID is in its own shard only.
	for _, j := range []string{follower(0), follower(500), "new@example.org"} {
		for k := range 7 {
			_, err := s.rdb.ZScore(ctx, s.keys.FollowerShard("star", k), j).Result()
			if in := err == nil; in != (k == followerShard(j, 7)) {
				t.Errorf("%s in shard %d: %v, its shard is %d", j, k, in, followerShard(j, 7))
			}
		}
	}
	if f, _ := s.Following(ctx, "new@example.org"); !slices.Equal(f, []string{"star"}) {
		t.Fatalf("followee index: %v", f)
	}
	must(t, s.DropFollowers(ctx, "star"))
	for k := range 7 {
		if c, _ := s.rdb.Exists(ctx, s.keys.FollowerShard("star", k)).Result(); c != 0 {
			t.Errorf("shard %d left after DropFollowers", k)
		}
	}
	if n, _ := s.FollowerCount(ctx, "star"); n != 0 {
		t.Fatalf("count after drop %d", n)
	}
	for _, j := range []string{follower(0), follower(501), "new@example.org"} {
		if f, _ := s.Following(ctx, j); len(f) != 0 {
			t.Errorf("%s still follows %v", j, f)
		}
	}
}

// TestShardedWalkWhileFollowsChange follows and unfollows in the middle of
// a walk over seven shards. The walk reads ahead (each shard a page's worth
// when it runs short of its share of the next page, so at most
// 7 × (30 + 100) JIDs past the cursor), so changes further on show and
// changes behind the cursor do not: no JID twice, every follower present
// throughout seen, those who left ahead not.
func TestShardedWalkWhileFollowsChange(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	s := shardedStore(t, r.Client(t), 7)
	const n, count = 2000, 100
	addFollowers(t, s, "star", 0, n)
	ahead := []string{follower(1500), follower(1501), follower(1777), follower(1999)}
	added := []string{"f01500x@example.org", "f01800x@example.org", "zz@example.org"}
	behind := []string{"a@example.org", "f00010x@example.org"}
	var got []string
	pages := 0
	err := s.WalkFollowers(ctx, "star", "", count, true, func(p []string, last string) error {
		pages++
		got = append(got, p...)
		if pages == 3 {
			if last >= follower(1500-7*(30+100)) {
				t.Fatalf("page 3 ends at %s: the changes would not be past what was read", last)
			}
			for _, j := range ahead {
				if _, err := s.Unfollow(ctx, "star", j); err != nil {
					return err
				}
			}
			for _, j := range append(slices.Clone(added), behind...) {
				if _, err := s.Follow(ctx, "star", j); err != nil {
					return err
				}
			}
			if _, err := s.Unfollow(ctx, "star", follower(5)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Fatal("the walk is out of order or repeats a JID")
	}
	seen := map[string]bool{}
	for _, j := range got {
		seen[j] = true
	}
	for i := range n {
		j := follower(i)
		if !slices.Contains(ahead, j) && i != 5 && !seen[j] {
			t.Errorf("%s, a follower throughout, was not walked", j)
		}
	}
	for _, j := range ahead {
		if seen[j] {
			t.Errorf("%s left ahead of the cursor and was walked", j)
		}
	}
	for _, j := range added {
		if !seen[j] {
			t.Errorf("%s followed ahead of the cursor and was not walked", j)
		}
	}
	for _, j := range behind {
		if seen[j] {
			t.Errorf("%s followed behind the cursor and was walked", j)
		}
	}
	if !seen[follower(5)] {
		t.Error("follower 5 left behind the cursor, after it was walked, and is missing")
	}
}

// TestShardedFanoutResumesSamePages fails a fanout over seven shards after
// its fourth batch was stored and before its progress was: the retry
// resumes from the saved cursor and cuts the same pages, so the page
// published again has the same message id and is dropped as a duplicate:
// every follower gets the post once.
func TestShardedFanoutResumesSamePages(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	s := shardedStore(t, r.Client(t), 7)
	const n = 5000
	addFollowers(t, s, "star", 0, n)
	sink := &memSink{}
	prog := &faultyProgress{RedisStore: s, failAt: 4}
	fan := fanout.NewFanout(s, sink, nil, fanout.WithTracking(prog, nil))
	post := starling.Post{ID: "01POST", Author: "star", Text: "hi"}
	if _, err := fan.Fan(ctx, post, nil); err == nil {
		t.Fatal("the first attempt did not fail")
	}
	if _, err := fan.Fan(ctx, post, nil); err != nil {
		t.Fatal(err)
	}
	got := sink.received()
	for i := range n {
		if c := got[follower(i)]; c != 1 {
			t.Errorf("%s got the post %d times", follower(i), c)
		}
	}
	if p, _ := s.Progress(ctx, "star", post.ID); !p.Done {
		t.Fatalf("progress after the retry: %+v", p)
	}
	t.Logf("%d batches stored, %d publish calls", len(sink.batches), sink.calls)
}

// TestCheckFollowerShards: the first process records its shard count and
// later ones with another count are refused; so is a count above 1 over
// follows written before any count was recorded; processes starting
// together with different counts agree on one.
func TestCheckFollowerShards(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	rdb := r.Client(t)
	refused := func(t *testing.T, err error, recorded, configured int, unrecorded bool) {
		t.Helper()
		var e *ShardCountError
		if !errors.As(err, &e) || e.Recorded != recorded || e.Configured != configured || e.Unrecorded != unrecorded {
			t.Fatalf("check: %v, want a refusal of %d over %d (unrecorded %v)", err, configured, recorded, unrecorded)
		}
		t.Log(err)
	}

	t.Run("first records, others must match", func(t *testing.T) {
		prefix := testenv.Prefix(t)
		must(t, NewRedisStore(rdb, prefix, WithFollowerShards(7)).CheckFollowerShards(ctx))
		must(t, NewRedisStore(rdb, prefix, WithFollowerShards(7)).CheckFollowerShards(ctx))
		refused(t, NewRedisStore(rdb, prefix).CheckFollowerShards(ctx), 7, 1, false)
		refused(t, NewRedisStore(rdb, prefix, WithFollowerShards(8)).CheckFollowerShards(ctx), 7, 8, false)
		if v, _ := rdb.HGet(ctx, prefix+"cfg", "follower_shards").Result(); v != "7" {
			t.Fatalf("recorded %q", v)
		}
	})
	t.Run("follows without a record", func(t *testing.T) {
		prefix := testenv.Prefix(t)
		old := NewRedisStore(rdb, prefix)
		if _, err := old.Follow(ctx, "star", "bob@example.org"); err != nil {
			t.Fatal(err)
		}
		refused(t, NewRedisStore(rdb, prefix, WithFollowerShards(3)).CheckFollowerShards(ctx), 1, 3, true)
		must(t, old.CheckFollowerShards(ctx))
		refused(t, NewRedisStore(rdb, prefix, WithFollowerShards(3)).CheckFollowerShards(ctx), 1, 3, false)
	})
	t.Run("a prefix is no pattern", func(t *testing.T) {
		// Follows under "p*:" are not those of "p[x]:".
		base := testenv.Prefix(t)
		if _, err := NewRedisStore(rdb, base+"px:").Follow(ctx, "star", "bob@example.org"); err != nil {
			t.Fatal(err)
		}
		must(t, NewRedisStore(rdb, base+"p*:", WithFollowerShards(3)).CheckFollowerShards(ctx))
	})
	t.Run("gate", func(t *testing.T) {
		// WithShardCheck: the first use of a follower set checks (and here
		// records) the count; a store with another count fails every such
		// use with the refusal, and nothing is written.
		prefix := testenv.Prefix(t)
		s7 := NewRedisStore(rdb, prefix, WithFollowerShards(7), WithShardCheck())
		if _, err := s7.Follow(ctx, "star", "bob@example.org"); err != nil {
			t.Fatal(err)
		}
		if v, _ := rdb.HGet(ctx, prefix+"cfg", "follower_shards").Result(); v != "7" {
			t.Fatalf("the first follow recorded %q", v)
		}
		s2 := NewRedisStore(rdb, prefix, WithFollowerShards(2), WithShardCheck())
		_, ferr := s2.Follow(ctx, "star", "carol@example.org")
		refused(t, ferr, 7, 2, false)
		_, aerr := s2.AddFollowers(ctx, "star", []string{"carol@example.org"})
		refused(t, aerr, 7, 2, false)
		_, uerr := s2.Unfollow(ctx, "star", "bob@example.org")
		refused(t, uerr, 7, 2, false)
		_, cerr := s2.FollowerCount(ctx, "star")
		refused(t, cerr, 7, 2, false)
		_, _, perr := s2.FollowerPage(ctx, "star", "", 10, nil)
		refused(t, perr, 7, 2, false)
		refused(t, s2.WalkFollowers(ctx, "star", "", 10, true, func([]string, string) error { return nil }), 7, 2, false)
		refused(t, s2.DropFollowers(ctx, "star"), 7, 2, false)
		if n, err := s7.FollowerCount(ctx, "star"); err != nil || n != 1 {
			t.Fatalf("after the refusals: %d followers, %v", n, err)
		}
		if f, _ := s7.Following(ctx, "carol@example.org"); len(f) != 0 {
			t.Fatalf("a refused follow was written: %v", f)
		}
	})
	t.Run("starting together", func(t *testing.T) {
		prefix := testenv.Prefix(t)
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() {
				errs[i] = NewRedisStore(rdb, prefix, WithFollowerShards(3+i%2)).CheckFollowerShards(ctx)
			})
		}
		wg.Wait()
		v, err := rdb.HGet(ctx, prefix+"cfg", "follower_shards").Result()
		must(t, err)
		for i, err := range errs {
			if ok := fmt.Sprint(3+i%2) == v; ok != (err == nil) {
				t.Errorf("process %d with %d shards (recorded %s): %v", i, 3+i%2, v, err)
			}
		}
	})
}

// TestShardsOnRedisCluster: on a real 3-master Redis Cluster, twelve
// shards of one author land on all three masters, the walk gives every
// follower once and in order, and the start-up check looks for old
// follows on every master.
func TestShardsOnRedisCluster(t *testing.T) {
	rc := testenv.StartRedisCluster(t, 3)
	rdb := rc.Client(t)
	ctx := context.Background()
	s := shardedStore(t, rdb, 12)
	must(t, s.CheckFollowerShards(ctx))
	want := referenceFollowers(t, s, "star", 3000)
	masters := map[string]int64{}
	for k := range 12 {
		key := s.keys.FollowerShard("star", k)
		m, err := rdb.MasterForKey(ctx, key)
		must(t, err)
		c, err := m.ZCard(ctx, key).Result() // asked of that master alone
		if err != nil || c == 0 {
			t.Fatalf("shard %d: %d members on %s, %v", k, c, m.Options().Addr, err)
		}
		masters[m.Options().Addr] += c
	}
	if len(masters) != 3 {
		t.Fatalf("the shards are on %d masters: %v", len(masters), masters)
	}
	t.Logf("followers per master: %v", masters)
	pages, _ := walkPages(t, s, "star", "", fanout.BatchSize)
	if got := slices.Concat(pages...); !slices.Equal(got, want) {
		t.Fatalf("walk gave %d followers, want %d (first difference at %d)", len(got), len(want), firstDiff(got, want))
	}
	if n, err := s.FollowerCount(ctx, "star"); err != nil || n != int64(len(want)) {
		t.Fatalf("count %d %v", n, err)
	}
	// A follow on any master, made without a recorded count, is found.
	prefix := testenv.Prefix(t)
	if _, err := NewRedisStore(rdb, prefix).Follow(ctx, "star", "bob@example.org"); err != nil {
		t.Fatal(err)
	}
	var e *ShardCountError
	if err := NewRedisStore(rdb, prefix, WithFollowerShards(12)).CheckFollowerShards(ctx); !errors.As(err, &e) || !e.Unrecorded {
		t.Fatalf("check over unrecorded follows on the cluster: %v", err)
	}
}
