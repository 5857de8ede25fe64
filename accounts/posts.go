package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"starling.dev/starling"
)

// Posts are kept per author in two keys of the author's hash slot: p:{alice}
// maps each post id to the post's JSON and l:{alice} orders the ids. Every
// member of l:{alice} has score 0, so the set is ordered by the id strings;
// ids are ULIDs, which sort by time, so ZREVRANGEBYLEX walks the posts newest
// first and any id works as a "before" cursor, even one since deleted. The
// index a:<id> names the author of a post for GET /v1/statuses/{id}; it lives
// in another slot and is written outside the author's scripts. An a:<id>
// left behind by a crash only leads to a missing hash field, that is to a 404.

// recordPost stores a post once and trims the author's history to ARGV[3]
// posts, returning the ids it dropped. It does nothing for an author that does
// not exist (deleted while the post was in flight), a post already stored, or
// a post whose deletion has begun (KEYS[4], its reserved retraction), so a
// retried RecordPost counts a post once and never brings a deleted one back.
var recordPost = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
if redis.call('EXISTS', KEYS[4]) == 1 then return {} end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return {} end
redis.call('HINCRBY', KEYS[1], 'posts', 1)
redis.call('ZADD', KEYS[3], 0, ARGV[1])
local excess = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[3])
if excess <= 0 then return {} end
local old = redis.call('ZRANGE', KEYS[3], 0, excess - 1)
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, excess - 1)
redis.call('HDEL', KEYS[2], unpack(old))
return old`)

// RecordPost counts a post the pipeline has durably accepted and keeps it in
// the author's history of RedisConfig.RecentPosts posts, where StatusByID and
// Statuses find it. Recording the same post again changes nothing, and
// neither does recording a post after its deletion began (both the API and
// the gateway's fanout stage record every post, in either order).
//
// Calls that arrive while another is in Redis are recorded together, in
// one pipeline (see recorder): under load, one round trip records many
// posts. Each post's part of the pipeline is the a:<id> index, then the
// script; the pipeline also deletes the index keys of posts that earlier
// calls trimmed from a history (staleIndex). Redis runs a connection's
// commands in order, so a post's index is written before the post enters
// the history: a post visible in the history always has its index.
func (s *RedisStore) RecordPost(ctx context.Context, p starling.Post) error {
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("accounts: record post: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("accounts: record post %s: %w", p.ID, err)
	}
	// Once queued, a record rides in a pipeline with a deadline of its own
	// (recordBatchTimeout), which ctx does not shorten.
	return s.rec.record(s, &pendingRecord{post: p, data: data, done: make(chan error, 1), lead: make(chan struct{}, 1)})
}

// recordBatchTimeout bounds one pipeline of records. It is the pipeline's
// own: the records of several callers ride in it, so no one caller's
// context may cut it short.
const recordBatchTimeout = 5 * time.Second

// maxRecordBatch bounds the posts of one pipeline.
const maxRecordBatch = 128

// recorder groups concurrent RecordPost calls. One caller at a time leads:
// it sends one pipeline with the records waiting (its own first), hands
// each caller its result, and passes the lead to the first record still
// waiting, whose caller sends the next pipeline. A lone call goes out at
// once, as it would without the recorder; under load a caller waits for at
// most the pipeline in flight and its own. Callers wait for their result
// whatever their context says: each pipeline is bounded by
// recordBatchTimeout, and the lead must find its caller waiting.
type recorder struct {
	mu      sync.Mutex
	waiting []*pendingRecord
	sending bool
}

type pendingRecord struct {
	post starling.Post
	data []byte
	done chan error    // the result; buffered, so the leader never blocks
	lead chan struct{} // the lead, passed to this record's caller; buffered
}

func (r *recorder) record(s *RedisStore, pr *pendingRecord) error {
	r.mu.Lock()
	r.waiting = append(r.waiting, pr)
	first := !r.sending
	r.sending = true
	r.mu.Unlock()
	if first {
		r.sendNext(s)
	}
	for {
		select {
		case err := <-pr.done:
			return err
		case <-pr.lead:
			r.sendNext(s)
		}
	}
}

// sendNext records the records waiting, up to maxRecordBatch, then passes
// the lead on, or ends the sending if nothing waits.
func (r *recorder) sendNext(s *RedisStore) {
	r.mu.Lock()
	n := min(len(r.waiting), maxRecordBatch)
	batch := r.waiting[:n:n]
	r.waiting = r.waiting[n:]
	r.mu.Unlock()
	s.recordBatch(batch)
	r.mu.Lock()
	if len(r.waiting) == 0 {
		r.sending = false
		r.waiting = nil
		r.mu.Unlock()
		return
	}
	next := r.waiting[0]
	r.mu.Unlock()
	next.lead <- struct{}{}
}

// recordBatch records the posts of batch in one pipeline, and tells each
// caller its result.
func (s *RedisStore) recordBatch(batch []*pendingRecord) {
	ctx, cancel := context.WithTimeout(context.Background(), recordBatchTimeout)
	defer cancel()
	stale := s.stale.take()
	index := make([]*redis.StatusCmd, len(batch))
	scripts := make([]*redis.Cmd, len(batch))
	var unlinked *redis.IntCmd
	_, _ = s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, pr := range batch {
			index[i] = pipe.Set(ctx, s.keys.PostAuthor(pr.post.ID), pr.post.Author, 0)
			scripts[i] = recordPost.EvalSha(ctx, pipe, s.recordKeys(pr.post), pr.post.ID, pr.data, s.cfg.RecentPosts)
		}
		for _, id := range stale {
			// One key per command: in a cluster the keys live on any slot.
			unlinked = pipe.Unlink(ctx, s.keys.PostAuthor(id))
		}
		return nil
	})
	if unlinked != nil && unlinked.Err() != nil {
		s.stale.put(stale) // the next pipeline tries again
	}
	for i, pr := range batch {
		pr.done <- s.finishRecord(ctx, pr, index[i], scripts[i])
	}
}

func (s *RedisStore) recordKeys(p starling.Post) []string {
	return []string{s.keys.User(p.Author), s.keys.Posts(p.Author), s.keys.PostOrder(p.Author), s.keys.Retraction(p.Author, p.ID)}
}

// finishRecord repairs what the pipeline could not do for one post, and
// notes the posts its script trimmed.
func (s *RedisStore) finishRecord(ctx context.Context, pr *pendingRecord, index *redis.StatusCmd, record *redis.Cmd) error {
	p := pr.post
	if err := index.Err(); err != nil {
		// The script may have run all the same (in a cluster the two keys
		// live on different nodes): write the index again so that a post in
		// the history keeps one.
		if err := s.rdb.Set(ctx, s.keys.PostAuthor(p.ID), p.Author, 0).Err(); err != nil {
			return fmt.Errorf("accounts: record post %s: %w", p.ID, err)
		}
	}
	if redis.HasErrorPrefix(record.Err(), "NOSCRIPT") {
		// The server's script cache is empty (a restart): EVAL loads it.
		record = recordPost.Eval(ctx, s.rdb, s.recordKeys(p), p.ID, pr.data, s.cfg.RecentPosts)
	}
	dropped, err := record.StringSlice()
	if err != nil {
		return fmt.Errorf("accounts: record post %s: %w", p.ID, err)
	}
	s.stale.put(dropped)
	return nil
}

// staleIndex collects the ids of posts trimmed from their author's history,
// whose a:<id> index keys the next RecordPost deletes in its own pipeline,
// so that trimming costs no round trip of its own. An index key left behind
// (a crash, a failed delete) only leads GET /v1/statuses/{id} to a missing
// history entry, that is to a 404. At most maxStale ids wait; past that the
// oldest are left behind rather than growing a pipeline without bound.
type staleIndex struct {
	mu  sync.Mutex
	ids []string
}

// maxStale bounds the index keys one RecordPost deletes.
const maxStale = 256

func (t *staleIndex) put(ids []string) {
	if len(ids) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ids = append(t.ids, ids...)
	if extra := len(t.ids) - maxStale; extra > 0 {
		t.ids = append(t.ids[:0], t.ids[extra:]...)
	}
}

func (t *staleIndex) take() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := t.ids
	t.ids = nil
	return ids
}

// postPage returns up to ARGV[2] posts older than the lex bound ARGV[1],
// newest first, in one round trip.
var postPage = redis.NewScript(`
local ids = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[1], '-', 'LIMIT', 0, tonumber(ARGV[2]))
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[2], unpack(ids))`)

// RecentPosts returns up to n of an author's latest posts, newest first.
func (s *RedisStore) RecentPosts(ctx context.Context, username string, n int) ([]starling.Post, error) {
	return s.Statuses(ctx, username, "", n)
}

// Statuses returns up to n of an author's posts older than the post id
// before ("" for the newest), newest first.
func (s *RedisStore) Statuses(ctx context.Context, username, before string, n int) ([]starling.Post, error) {
	if n <= 0 {
		return nil, nil
	}
	bound := "+"
	if before != "" {
		bound = "(" + before
	}
	keys := []string{s.keys.PostOrder(username), s.keys.Posts(username)}
	raw, err := postPage.Run(ctx, s.rdb, keys, bound, n).Slice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("accounts: posts of %q: %w", username, err)
	}
	posts := make([]starling.Post, 0, len(raw))
	for _, r := range raw {
		data, ok := r.(string)
		if !ok {
			continue // deleted between the two reads of another client's script; cannot happen inside one
		}
		var p starling.Post
		if err := json.Unmarshal([]byte(data), &p); err != nil {
			return nil, fmt.Errorf("accounts: posts of %q: %w", username, err)
		}
		posts = append(posts, p)
	}
	return posts, nil
}

// StatusByID returns a post still in its author's history and true, or false
// when there is none with that id.
func (s *RedisStore) StatusByID(ctx context.Context, id string) (starling.Post, bool, error) {
	author, err := s.rdb.Get(ctx, s.keys.PostAuthor(id)).Result()
	if errors.Is(err, redis.Nil) {
		return starling.Post{}, false, nil
	}
	if err != nil {
		return starling.Post{}, false, fmt.Errorf("accounts: status %s: %w", id, err)
	}
	data, err := s.rdb.HGet(ctx, s.keys.Posts(author), id).Bytes()
	if errors.Is(err, redis.Nil) {
		return starling.Post{}, false, nil
	}
	if err != nil {
		return starling.Post{}, false, fmt.Errorf("accounts: status %s: %w", id, err)
	}
	var p starling.Post
	if err := json.Unmarshal(data, &p); err != nil {
		return starling.Post{}, false, fmt.Errorf("accounts: status %s: %w", id, err)
	}
	return p, true, nil
}

// deletePost removes one post from the author's history and uncounts it.
var deletePost = redis.NewScript(`
if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HINCRBY', KEYS[1], 'posts', -1) end
return 1`)

// DeletePost removes a post from its author's history, so that StatusByID,
// Statuses and RecentPosts no longer return it. It reports whether the post
// was there; deleting it again is harmless.
func (s *RedisStore) DeletePost(ctx context.Context, author, id string) (bool, error) {
	keys := []string{s.keys.User(author), s.keys.Posts(author), s.keys.PostOrder(author)}
	n, err := deletePost.Run(ctx, s.rdb, keys, id).Int()
	if err != nil {
		return false, fmt.Errorf("accounts: delete post %s: %w", id, err)
	}
	if err := s.rdb.Del(ctx, s.keys.PostAuthor(id)).Err(); err != nil {
		return n == 1, fmt.Errorf("accounts: delete post %s: %w", id, err)
	}
	return n == 1, nil
}

// Retracted reports whether the deletion of the author's post has begun:
// DELETE /v1/statuses/{id} reserves the retraction (ReserveRetraction)
// before it publishes it. The pipeline asks before each batch of the post
// and stops delivering it once this is true.
func (s *RedisStore) Retracted(ctx context.Context, author, id string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.keys.Retraction(author, id)).Result()
	if err != nil {
		return false, fmt.Errorf("accounts: retraction of %s: %w", id, err)
	}
	return n == 1, nil
}

// dropStatusIndex deletes the a:<id> keys of posts no longer kept.
func (s *RedisStore) dropStatusIndex(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.Del(ctx, s.keys.PostAuthor(id))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("accounts: drop status index: %w", err)
	}
	return nil
}
