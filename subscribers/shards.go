package subscribers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// An author's followers may be spread over several sorted sets, the
// shards, each with a hash tag of its own so that Redis Cluster puts them
// in different slots: one set lives on one node, and a celebrity's walk
// would keep that node busy while the others idle. Shard 0 is f:{<user>},
// so one shard is the unsharded layout. A walk reads the shards together
// (shardPages) and merges them into the very pages one set would give, so
// its cursor, a JID, means what it means with one set.

// followerShard is the shard, among n, of a follower's bare JID: FNV-1a
// (32 bits) of its bytes, mod n. Every write and read of a follow edge
// finds its set through it, so it must never change.
func followerShard(jid string, n int) int {
	if n <= 1 {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(jid); i++ {
		h ^= uint32(jid[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// followersKey is the set of author's followers that holds jid.
func (s *RedisStore) followersKey(author, jid string) string {
	return s.keys.FollowerShard(author, followerShard(jid, s.shards))
}

// lexAfter is the ZRANGE BYLEX start of the members after the JID after
// ("" for the first).
func lexAfter(after string) string {
	if after == "" {
		return "-"
	}
	return "(" + after
}

// followerPages reads an author's followers page by page in JID order. A
// walk calls start for the first page, then, for each later one, queue on
// the pipeline that carries the current page's states, and next once the
// read has run.
type followerPages interface {
	// start reads the page after the JID after ("" for the first).
	start(ctx context.Context, after string) error
	// queue adds to p the read of the page after after, the last JID of
	// the page next returned.
	queue(ctx context.Context, p redis.Pipeliner, after string)
	// next returns the page read last: the first count followers after
	// the cursor, or fewer at the end, and whether a later page may hold
	// more. The slice is reused by the next call.
	next(ctx context.Context) (jids []string, more bool, err error)
}

// pages returns the pager of author's followers, count at a time: one
// ZRANGE per round trip with one shard, the merged shards otherwise.
// readAhead, for a walk that will go on, makes each read of a shard a
// page's worth, so that a page costs about one ZRANGE as with one set; a
// single page reads no more than it needs.
func (s *RedisStore) pages(author string, count int, readAhead bool) followerPages {
	if s.shards == 1 {
		return &setPages{s: s, key: s.keys.Followers(author), count: count}
	}
	return s.newShardPages(author, count, readAhead)
}

// setPages pages through one sorted set.
type setPages struct {
	s     *RedisStore
	key   string
	count int
	cmd   *redis.StringSliceCmd
}

func (p *setPages) start(ctx context.Context, after string) error {
	p.cmd = p.s.followersAfter(ctx, p.s.rdb, p.key, after, p.count)
	return p.cmd.Err()
}

func (p *setPages) queue(ctx context.Context, pipe redis.Pipeliner, after string) {
	p.cmd = p.s.followersAfter(ctx, pipe, p.key, after, p.count)
}

func (p *setPages) next(context.Context) ([]string, bool, error) {
	jids, err := p.cmd.Result()
	return jids, len(jids) >= p.count && len(jids) > 0, err
}

// shardPages pages through the shards of an author's followers together,
// cutting the pages one set would: the first count followers after the
// cursor, so a page depends only on its cursor and a resumed walk cuts
// the same pages. Each shard keeps what it has read and not paged yet;
// before a page is cut, every shard holding less than ask, its expected
// share of a page and a margin, is read (in one pipeline, which a cluster
// client splits by node and runs in parallel), at least least JIDs. Nothing
// is read twice. A page can end no later than the smallest last JID read
// from a shard that gave all it was asked (one that gave fewer has nothing
// more): every follower up to there, in any shard, has been read. When
// that falls short of a page, because a shard held more than its margin of
// it, next reads more from the shards holding it back before it returns.
//
// The same merge walks a post's audience (mergedPages): the follower
// shards, the sorted sets of the post's trackers (k:{<word>}) and a fixed
// list of other JIDs, each a source like a shard. Sources may overlap
// there, so a JID met in several is paged once (prev).
type shardPages struct {
	s     *RedisStore
	count int // JIDs in a page
	least int // JIDs asked of a shard at least, when it is read
	shard []shardBuf
	page  []string  // reused
	heap  []headJID // shards with JIDs not paged, by their first such JID
	prev  string    // the last JID paged (at first, the cursor)
}

// shardBuf is a shard's part of a walk.
type shardBuf struct {
	key string
	ask int // JIDs it should hold before a page is cut
	// fixed, when not nil, makes the source a list held in memory,
	// sorted and without repeats, rather than a sorted set.
	fixed []string
	jids  []string // jids[head:] are read and not paged yet
	head  int
	// last is the last JID read from the shard (at first, the cursor);
	// done says that a read gave fewer than it asked: there is no more.
	last string
	done bool
	// cmd is the read in flight, of asked JIDs, or nil.
	cmd   *redis.StringSliceCmd
	asked int
}

func (s *RedisStore) newShardPages(author string, count int, readAhead bool) *shardPages {
	count = max(count, 1)
	ask := shardAsk(count, s.shards)
	least := 1
	if readAhead {
		least = count
	}
	p := &shardPages{
		s:     s,
		count: count,
		least: least,
		shard: make([]shardBuf, s.shards),
		page:  make([]string, 0, count),
		heap:  make([]headJID, 0, s.shards),
	}
	for k := range p.shard {
		p.shard[k].key, p.shard[k].ask = s.keys.FollowerShard(author, k), ask
	}
	return p
}

// mergedPages reads the author's followers, the trackers of the match keys
// and the JIDs of the fixed list (sorted, without repeats) together, in
// JID order, each JID once. A tracker set may be as large as a page, so
// each is topped up to a page's worth; most hold a few JIDs, and are done
// after the first read, which start makes for all sources in one pipeline.
func (s *RedisStore) mergedPages(author string, keys, fixed []string, count int) *shardPages {
	p := s.newShardPages(author, count, true)
	for _, key := range keys {
		p.shard = append(p.shard, shardBuf{key: s.keys.Trackers(key), ask: p.count})
	}
	if len(fixed) > 0 {
		p.shard = append(p.shard, shardBuf{fixed: fixed})
	}
	return p
}

// shardAsk is how many JIDs each of n shards should hold before a page of
// count is cut: its expected share (the hash is uniform) plus four
// standard deviations of it (binomial), so that a page holds more of a
// shard than that, and waits for one more read, about once in 30,000
// pages per shard. Never more than count, which is all a page can take
// from one shard.
func shardAsk(count, n int) int {
	p := 1 / float64(n)
	mean := float64(count) * p
	sd := math.Sqrt(mean * (1 - p))
	return min(count, int(math.Ceil(mean+4*sd))+1)
}

func (p *shardPages) start(ctx context.Context, after string) error {
	p.prev = after
	for k := range p.shard {
		b := &p.shard[k]
		b.jids, b.head, b.last, b.done = b.jids[:0], 0, after, false
		if b.fixed != nil {
			// Held whole: copied, since paging clears what it pages.
			from, _ := slices.BinarySearch(b.fixed, after)
			if from < len(b.fixed) && b.fixed[from] == after {
				from++
			}
			b.jids, b.done = append(b.jids, b.fixed[from:]...), true
		}
	}
	return p.read(ctx, func(b *shardBuf) bool { return true })
}

// read tops up, in one pipeline, the shards that want it.
func (p *shardPages) read(ctx context.Context, want func(*shardBuf) bool) error {
	_, err := p.s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		p.queueSome(ctx, pipe, want)
		return nil
	})
	return err
}

// queue tops up every shard holding less than ask. The shards remember
// where they are, so after is not needed.
func (p *shardPages) queue(ctx context.Context, pipe redis.Pipeliner, _ string) {
	p.queueSome(ctx, pipe, func(b *shardBuf) bool { return len(b.jids)-b.head < b.ask })
}

func (p *shardPages) queueSome(ctx context.Context, pipe redis.Pipeliner, want func(*shardBuf) bool) {
	for k := range p.shard {
		b := &p.shard[k]
		if b.done || !want(b) {
			continue
		}
		b.asked = max(b.ask-(len(b.jids)-b.head), p.least)
		b.cmd = pipe.ZRangeArgs(ctx, redis.ZRangeArgs{Key: b.key, Start: lexAfter(b.last), Stop: "+", ByLex: true, Count: int64(b.asked)})
	}
}

// absorb moves the replies of the reads in flight into the shards.
func (p *shardPages) absorb() error {
	for k := range p.shard {
		b := &p.shard[k]
		if b.cmd == nil {
			continue
		}
		got, err := b.cmd.Result()
		b.cmd = nil
		if err != nil {
			return err
		}
		if len(got) < b.asked {
			b.done = true
		}
		if len(got) > 0 {
			b.last = got[len(got)-1]
		}
		// Keep the JIDs not paged at the front, so the slice stops growing.
		n := copy(b.jids, b.jids[b.head:])
		b.jids, b.head = append(b.jids[:n], got...), 0
	}
	return nil
}

func (p *shardPages) next(ctx context.Context) ([]string, bool, error) {
	p.page = p.page[:0]
	for {
		if err := p.absorb(); err != nil {
			return nil, false, err
		}
		bound, bounded := "", false
		for k := range p.shard {
			if b := &p.shard[k]; !b.done && (!bounded || b.last < bound) {
				bound, bounded = b.last, true
			}
		}
		p.merge(bound, bounded)
		if len(p.page) == p.count || !bounded {
			break
		}
		// Short of a page: the shards that hold it back have paged all
		// they read. Rare with the margin of shardAsk.
		err := p.read(ctx, func(b *shardBuf) bool { return b.head == len(b.jids) })
		if err != nil {
			return nil, false, err
		}
	}
	more := len(p.page) == p.count && len(p.page) > 0
	if more && len(p.heap) == 0 {
		more = slices.ContainsFunc(p.shard, func(b shardBuf) bool { return !b.done })
	}
	return p.page, more, nil
}

// merge appends to the page, in JID order, the shards' JIDs not paged yet,
// up to bound when bounded, until the page is full. A JID equal to the one
// paged last is dropped: sources that overlap give it one after the other.
func (p *shardPages) merge(bound string, bounded bool) {
	h := p.heap[:0]
	for k := range p.shard {
		if b := &p.shard[k]; b.head < len(b.jids) {
			h = append(h, headJID{b.jids[b.head], k})
		}
	}
	p.heap = h
	for i := len(h)/2 - 1; i >= 0; i-- {
		p.down(i)
	}
	for len(p.page) < p.count && len(p.heap) > 0 {
		top := &p.heap[0]
		if bounded && top.jid > bound {
			return
		}
		if top.jid != p.prev { // the same JID from another source is paged once
			p.page = append(p.page, top.jid)
			p.prev = top.jid
		}
		b := &p.shard[top.shard]
		b.jids[b.head] = "" // let it go once paged
		if b.head++; b.head < len(b.jids) {
			top.jid = b.jids[b.head]
		} else {
			last := len(p.heap) - 1
			p.heap[0] = p.heap[last]
			p.heap = p.heap[:last]
		}
		p.down(0)
	}
}

// headJID is a shard's first JID not paged, in merge's heap.
type headJID struct {
	jid   string
	shard int
}

// down restores the heap order below position i.
func (p *shardPages) down(i int) {
	h := p.heap
	for {
		least := i
		if l := 2*i + 1; l < len(h) && h[l].jid < h[least].jid {
			least = l
		}
		if r := 2*i + 2; r < len(h) && h[r].jid < h[least].jid {
			least = r
		}
		if least == i {
			return
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
}

// shardsField is the field of cfg holding the follower shard count.
const shardsField = "follower_shards"

// ShardCountError is CheckFollowerShards' refusal: the data in Redis was
// written with another follower shard count than this store's.
type ShardCountError struct {
	// Recorded is the count the data was written with; Configured is the
	// store's.
	Recorded, Configured int
	// Unrecorded is set when no count was recorded yet but follower sets
	// exist: they were written with one shard, before counts were
	// recorded.
	Unrecorded bool
}

func (e *ShardCountError) Error() string {
	if e.Unrecorded {
		return "subscribers: follower sets exist but no shard count is recorded, so they were written with 1 shard; this process is configured with " +
			strconv.Itoa(e.Configured) + ", under which most followers would be invisible"
	}
	return "subscribers: the follower sets in Redis were written with a shard count of " + strconv.Itoa(e.Recorded) +
		", this process is configured with " + strconv.Itoa(e.Configured) +
		"; a JID's shard depends on the count, so most followers would be invisible"
}

// CheckFollowerShards makes sure that the data in Redis was written with
// this store's follower shard count: with another count a JID is looked
// for in another set than the one holding it. The first process to start
// over the data records its count in cfg (HSETNX, so processes starting
// together agree on one); a process with another count gets a
// *ShardCountError. Before recording a count above 1 it looks for follow
// edges written before counts were recorded, which have one shard, and
// refuses if there are any. Each process calls it at start; a store made
// WithShardCheck also calls it before its first use of follower sets.
func (s *RedisStore) CheckFollowerShards(ctx context.Context) error {
	key := s.keys.Settings()
	rec, err := s.rdb.HGet(ctx, key, shardsField).Result()
	if errors.Is(err, redis.Nil) {
		if s.shards > 1 {
			found, ferr := s.anyFollowEdge(ctx)
			if ferr != nil {
				return fmt.Errorf("subscribers: looking for unsharded followers: %w", ferr)
			}
			if found {
				return &ShardCountError{Recorded: 1, Configured: s.shards, Unrecorded: true}
			}
		}
		set, serr := s.rdb.HSetNX(ctx, key, shardsField, s.shards).Result()
		if serr != nil {
			return fmt.Errorf("subscribers: recording the follower shard count: %w", serr)
		}
		if set {
			s.checked.Store(true)
			return nil
		}
		rec, err = s.rdb.HGet(ctx, key, shardsField).Result() // another process was first
	}
	if err != nil {
		return fmt.Errorf("subscribers: reading the follower shard count: %w", err)
	}
	n, err := strconv.Atoi(rec)
	if err != nil {
		return fmt.Errorf("subscribers: %s %s holds %q, not a shard count", key, shardsField, rec)
	}
	if n != s.shards {
		return &ShardCountError{Recorded: n, Configured: s.shards}
	}
	s.checked.Store(true)
	return nil
}

// shardsChecked is the gate of WithShardCheck, run by every operation on
// follower sets: one atomic load once the check has passed. A refusal
// stands until the process restarts (with another configuration).
func (s *RedisStore) shardsChecked(ctx context.Context) error {
	if !s.gated || s.checked.Load() {
		return nil
	}
	if e := s.refused.Load(); e != nil {
		return e
	}
	err := s.CheckFollowerShards(ctx)
	var e *ShardCountError
	if errors.As(err, &e) {
		s.refused.Store(e)
	}
	return err
}

// anyFollowEdge reports whether any f: or g: key exists under the store's
// prefix (a follow writes both), on every master of a cluster. It scans
// the keyspace, so it is for start-up only, and only before a count is
// recorded.
func (s *RedisStore) anyFollowEdge(ctx context.Context) (bool, error) {
	match := globEscaper.Replace(s.keys.Prefix) + "[fg]:*"
	scan := func(ctx context.Context, c redis.Cmdable) (bool, error) {
		for cursor := uint64(0); ; {
			keys, next, err := c.Scan(ctx, cursor, match, 1000).Result()
			if err != nil || len(keys) > 0 {
				return len(keys) > 0, err
			}
			if next == 0 {
				return false, nil
			}
			cursor = next
		}
	}
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return scan(ctx, s.rdb)
	}
	var found atomic.Bool
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		f, err := scan(ctx, c)
		if f {
			found.Store(true)
		}
		return err
	})
	return found.Load(), err
}

// globEscaper quotes the characters SCAN's MATCH patterns give a meaning.
var globEscaper = strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)
