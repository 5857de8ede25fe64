package accounts

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"starling.dev/starling"
	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/subscribers"
)

// roundTrips counts the commands and pipelines a client sends: one round
// trip each.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// count returns how many round trips f made.
func (h *roundTrips) count(t *testing.T, f func() error) int64 {
	t.Helper()
	before := h.n.Load()
	if err := f(); err != nil {
		t.Fatal(err)
	}
	return h.n.Load() - before
}

// TestPostPathRoundTrips pins the Redis round trips of POST /v1/statuses:
// two for the token and display name (the API caches them), one to record
// the post, trimmed history or not: the index of a trimmed post goes in the
// next record's pipeline.
func TestPostPathRoundTrips(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	rdb := r.Client(t)
	h := &roundTrips{}
	rdb.AddHook(h)
	s, err := NewRedisStore(rdb, subscribers.NewRedisStore(rdb, testenv.Prefix(t)), RedisConfig{Prefix: testenv.Prefix(t), RecentPosts: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, "alice", "Alice A.", "h1", time.Now()); err != nil {
		t.Fatal(err)
	}
	var user, name string
	if n := h.count(t, func() (err error) { user, name, err = s.UserByTokenHash(ctx, "h1"); return }); n != 2 {
		t.Errorf("UserByTokenHash: %d round trips, want 2", n)
	}
	if user != "alice" || name != "Alice A." {
		t.Fatalf("UserByTokenHash = %q %q", user, name)
	}
	record := func(id string) func() error {
		return func() error { return s.RecordPost(ctx, starling.Post{ID: id, Author: "alice", Text: "t"}) }
	}
	// The first EVALSHA may meet an empty script cache and fall back to EVAL.
	h.count(t, record("01"))
	if n := h.count(t, record("02")); n != 1 {
		t.Errorf("RecordPost: %d round trips, want 1", n)
	}
	if n := h.count(t, record("03")); n != 1 {
		t.Errorf("RecordPost trimming the history: %d round trips, want 1", n)
	}
	for id, want := range map[string]bool{"01": false, "02": true, "03": true} {
		if _, ok, err := s.StatusByID(ctx, id); ok != want || err != nil {
			t.Errorf("StatusByID(%s) = %v %v, want %v", id, ok, err, want)
		}
	}
	if n := h.count(t, record("04")); n != 1 {
		t.Errorf("RecordPost deleting the index of a trimmed post: %d round trips, want 1", n)
	}
	if n, _ := rdb.Exists(ctx, s.keys.PostAuthor("01")).Result(); n != 0 {
		t.Error("the index of the trimmed post is left after the next record")
	}
	if n, _ := rdb.Exists(ctx, s.keys.PostAuthor("03")).Result(); n != 1 {
		t.Error("the index of a kept post is gone")
	}
}

// TestRecordPostAfterScriptFlush checks the fallback from EVALSHA to EVAL in
// RecordPost's pipeline, as after a Redis restart.
func TestRecordPostAfterScriptFlush(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	s := newStore(t, r)
	if err := s.CreateUser(ctx, "alice", "Alice", "h1", time.Now()); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("0%d", i)
		if err := s.RecordPost(ctx, starling.Post{ID: id, Author: "alice", Text: "t"}); err != nil {
			t.Fatalf("RecordPost after SCRIPT FLUSH: %v", err)
		}
		if _, ok, err := s.StatusByID(ctx, id); !ok || err != nil {
			t.Fatalf("StatusByID(%s) = %v %v", id, ok, err)
		}
	}
	if p, _ := s.Profile(ctx, "alice"); p.Posts != 3 {
		t.Fatalf("posts = %d, want 3", p.Posts)
	}
}

// TestTokenOfDeletedAccount checks that a token key outliving its account
// (a deletion cut short) does not authenticate.
func TestTokenOfDeletedAccount(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	s := newStore(t, r)
	if err := s.CreateUser(ctx, "alice", "Alice", "h1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.rdb.Del(ctx, s.keys.User("alice")).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.UserByTokenHash(ctx, "h1"); !errors.Is(err, starling.ErrUnknownToken) {
		t.Fatalf("token of a deleted account: %v", err)
	}
}

// TestTokenLookupRedisDown checks that a failing Redis is an error, not an
// unknown token (a 500, not a 401).
func TestTokenLookupRedisDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	s, err := NewRedisStore(rdb, subscribers.NewRedisStore(rdb, ""), RedisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.UserByTokenHash(context.Background(), "h1"); err == nil || errors.Is(err, starling.ErrUnknownToken) {
		t.Fatalf("UserByTokenHash with Redis down: %v", err)
	}
}

// gate holds the first pipeline until released, so that the test knows
// every other record is queued behind it.
type gate struct {
	roundTrips
	first   atomic.Bool
	release chan struct{}
}

func (g *gate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	count := g.roundTrips.ProcessPipelineHook(next)
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if g.first.CompareAndSwap(false, true) {
			<-g.release
		}
		return count(ctx, cmds)
	}
}

// TestConcurrentRecordsShareRoundTrips: records that arrive while another
// is in Redis go together in the next pipeline, and each caller gets its own
// post recorded.
func TestConcurrentRecordsShareRoundTrips(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	rdb := r.Client(t)
	s, err := NewRedisStore(rdb, subscribers.NewRedisStore(rdb, testenv.Prefix(t)), RedisConfig{Prefix: testenv.Prefix(t), RecentPosts: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, "alice", "Alice", "h1", time.Now()); err != nil {
		t.Fatal(err)
	}
	// Load the script, so that no NOSCRIPT fallback adds a round trip.
	if err := s.RecordPost(ctx, starling.Post{ID: "00", Author: "alice", Text: "t"}); err != nil {
		t.Fatal(err)
	}
	g := &gate{release: make(chan struct{})}
	rdb.AddHook(g)
	const n = 64
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- s.RecordPost(ctx, starling.Post{ID: fmt.Sprintf("%02d", i+1), Author: "alice", Text: "t"})
		}()
	}
	testenv.Eventually(t, 5*time.Second, func() bool {
		s.rec.mu.Lock()
		defer s.rec.mu.Unlock()
		return len(s.rec.waiting) == n-1
	}, "the other records did not queue behind the first pipeline")
	close(g.release)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := g.n.Load(); got != 2 {
		t.Errorf("%d records took %d round trips, want 2 (the first, then all the rest)", n, got)
	}
	for i := range n {
		if _, ok, err := s.StatusByID(ctx, fmt.Sprintf("%02d", i+1)); !ok || err != nil {
			t.Errorf("post %02d not recorded: %v", i+1, err)
		}
	}
}
