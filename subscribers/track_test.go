package subscribers

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"starling.dev/starling/fanout"
	"starling.dev/starling/internal/testenv"
)

func TestTrackIndex(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	s := newStore(t, r)
	const bob = "bob@example.org"
	for _, k := range []string{"go", "#rust", "zig"} {
		if added, full, err := s.Track(ctx, bob, k, 3); err != nil || !added || full {
			t.Fatalf("track %s: %v %v %v", k, added, full, err)
		}
	}
	if added, full, err := s.Track(ctx, bob, "go", 3); err != nil || added || full {
		t.Fatalf("track go again: added %v full %v %v", added, full, err)
	}
	if added, full, err := s.Track(ctx, bob, "c", 3); err != nil || added || !full {
		t.Fatalf("track past the cap: added %v full %v %v", added, full, err)
	}
	if n, _ := s.rdb.Exists(ctx, s.keys.Trackers("c")).Result(); n != 0 {
		t.Fatal("a word refused for the cap is in the index")
	}
	if keys, err := s.Tracked(ctx, bob); err != nil || !slices.Equal(keys, []string{"#rust", "go", "zig"}) {
		t.Fatalf("tracked: %q %v", keys, err)
	}
	if removed, err := s.Untrack(ctx, bob, "go"); err != nil || !removed {
		t.Fatalf("untrack: %v %v", removed, err)
	}
	if removed, _ := s.Untrack(ctx, bob, "go"); removed {
		t.Fatal("second untrack reported a removal")
	}
	if n, _ := s.rdb.Exists(ctx, s.keys.Trackers("go")).Result(); n != 0 {
		t.Fatal("the last tracker's untrack left k:{go}")
	}
	// A crash between the two writes left the word listed but not indexed:
	// tracking it again repairs the index.
	s.rdb.ZRem(ctx, s.keys.Trackers("zig"), bob)
	if added, _, err := s.Track(ctx, bob, "zig", 3); err != nil || added {
		t.Fatalf("track zig again: %v %v", added, err)
	}
	if n, _ := s.rdb.ZScore(ctx, s.keys.Trackers("zig"), bob).Result(); n != 0 || s.rdb.ZRank(ctx, s.keys.Trackers("zig"), bob).Err() != nil {
		t.Fatal("tracking again did not repair the index")
	}
}

// audienceFixture has followers of "star", trackers of two words that
// overlap with them and with each other, and a fixed list of JIDs.
type audienceFixture struct {
	keys  []string
	fixed []string
	want  []string // the union, sorted
}

func newAudienceFixture(t *testing.T, s *RedisStore) audienceFixture {
	t.Helper()
	ctx := context.Background()
	f := audienceFixture{keys: []string{"go", "#rust", "nobody"}}
	union := map[string]bool{}
	addFollowers(t, s, "star", 0, 900)
	for i := range 900 {
		union[follower(i)] = true
	}
	track := func(key, jid string) {
		if _, _, err := s.Track(ctx, jid, key, 25); err != nil {
			t.Fatal(err)
		}
		union[jid] = true
	}
	for i := 0; i < 1200; i += 3 { // every third follower, and 100 more
		track("go", follower(i))
	}
	for i := 0; i < 1500; i += 5 { // overlaps followers and go's trackers
		track("#rust", follower(i))
	}
	for i := range 50 {
		track("#rust", fmt.Sprintf("t%03d@tracker.example", i))
	}
	f.fixed = []string{"a@first.example", follower(3), follower(1000), "zz@last.example"}
	for _, j := range f.fixed {
		union[j] = true
	}
	for j := range union {
		f.want = append(f.want, j)
	}
	slices.Sort(f.want)
	return f
}

// walkAudience walks star's audience from after, all of it, and returns
// the pages with their cursors.
func walkAudience(t *testing.T, s *RedisStore, f audienceFixture, after string, count int) (pages [][]string, lasts []string) {
	t.Helper()
	a := fanout.Audience{Keys: f.keys, JIDs: f.fixed}
	err := s.WalkAudience(context.Background(), "star", a, after, count, true, func(p []string, last string) error {
		pages = append(pages, slices.Clone(p))
		lasts = append(lasts, last)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pages, lasts
}

// TestWalkAudience: followers, trackers of the post's words and the fixed
// JIDs are walked as one sorted set, each JID once, in full pages; a walk
// resumed from any cursor cuts the same pages; the filter applies to
// trackers as to followers. With one follower shard and with five.
func TestWalkAudience(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	const count = 100
	for _, shards := range []int{1, 5} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			s := shardedStore(t, r.Client(t), shards)
			f := newAudienceFixture(t, s)
			pages, lasts := walkAudience(t, s, f, "", count)
			if got := slices.Concat(pages...); !slices.Equal(got, f.want) {
				t.Fatalf("walk gave %d JIDs, want the %d of the union (first difference at %d)", len(got), len(f.want), firstDiff(got, f.want))
			}
			if chunks := slices.Collect(slices.Chunk(f.want, count)); !slices.EqualFunc(pages, chunks, slices.Equal) {
				t.Fatalf("%d pages, not the union cut every %d", len(pages), count)
			}
			for i, last := range lasts {
				if rest, _ := walkAudience(t, s, f, last, count); !slices.EqualFunc(rest, pages[i+1:], slices.Equal) {
					t.Fatalf("resumed after page %d: pages differ", i)
				}
			}
			// No audience: exactly the follower walk.
			plain, _ := walkPages(t, s, "star", "", count)
			var none [][]string
			err := s.WalkAudience(ctx, "star", fanout.Audience{}, "", count, true, func(p []string, _ string) error {
				none = append(none, slices.Clone(p))
				return nil
			})
			if err != nil || !slices.EqualFunc(none, plain, slices.Equal) {
				t.Fatalf("empty audience: %v, pages differ from the follower walk", err)
			}
		})
	}

	t.Run("filter", func(t *testing.T) {
		s := newStore(t, r)
		f := newAudienceFixture(t, s)
		paused, offline := "t007@tracker.example", follower(1005) // trackers only
		must(t, s.SetPaused(ctx, paused, true))
		must(t, s.Granted(ctx, offline, "mb.example", true))
		if _, err := s.SetPresence(ctx, offline, "", false); err != nil {
			t.Fatal(err)
		}
		var got []string
		err := s.WalkAudience(ctx, "star", fanout.Audience{Keys: f.keys, JIDs: f.fixed}, "", count, false, func(p []string, _ string) error {
			got = append(got, p...)
			return nil
		})
		must(t, err)
		want := slices.DeleteFunc(slices.Clone(f.want), func(j string) bool { return j == paused || j == offline })
		if !slices.Equal(got, want) {
			t.Fatalf("filtered walk: %d JIDs, want %d (first difference at %d)", len(got), len(want), firstDiff(got, want))
		}
	})
}
