package subscribers

import (
	"context"
	"fmt"
	"sort"

	"github.com/redis/go-redis/v9"

	"starling.dev/starling/fanout"
)

// Tracking is an inverted index: k:{<word>} holds the bare JIDs tracking a
// match key (a folded word, or "#" and one: fanout.MatchKeys), a sorted set
// scored 0 like the follower sets, so that the fanout walks it merged with
// them (WalkAudience); tk:{<jid>} holds the keys a JID tracks, for
// "tracking" and the cap. The two live in different slots and are written
// one after the other, the JID's set first: a crash between leaves the word
// listed without deliveries, which the next "track" or "untrack" of it
// repairs (both always write both).

var _ fanout.AudiencePager = (*RedisStore)(nil)

// addTrack adds ARGV[1] to the JID's tracked keys unless it holds ARGV[2]
// already: 1 added, 0 there already, -1 full.
var addTrack = redis.NewScript(`
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 0 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return -1 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1`)

// Track makes the bare JID track the match key, unless it tracks limit keys
// already (full). added is false when it tracked the key before.
func (s *RedisStore) Track(ctx context.Context, jid, key string, limit int) (added, full bool, err error) {
	n, err := addTrack.Run(ctx, s.rdb, []string{s.keys.Tracking(jid)}, key, limit).Int()
	if err != nil {
		return false, false, fmt.Errorf("subscribers: track %q for %s: %w", key, jid, err)
	}
	if n < 0 {
		return false, true, nil
	}
	if err := s.rdb.ZAdd(ctx, s.keys.Trackers(key), redis.Z{Member: jid}).Err(); err != nil {
		return false, false, fmt.Errorf("subscribers: track %q for %s: %w", key, jid, err)
	}
	return n == 1, false, nil
}

// Untrack ends the JID's tracking of the key; it reports whether it was
// tracked.
func (s *RedisStore) Untrack(ctx context.Context, jid, key string) (bool, error) {
	var removed *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		removed = p.SRem(ctx, s.keys.Tracking(jid), key)
		p.ZRem(ctx, s.keys.Trackers(key), jid)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("subscribers: untrack %q for %s: %w", key, jid, err)
	}
	return removed.Val() == 1, nil
}

// Tracked returns the keys the JID tracks, sorted.
func (s *RedisStore) Tracked(ctx context.Context, jid string) ([]string, error) {
	keys, err := s.rdb.SMembers(ctx, s.keys.Tracking(jid)).Result()
	if err != nil {
		return nil, fmt.Errorf("subscribers: tracking of %s: %w", jid, err)
	}
	sort.Strings(keys)
	return keys, nil
}

// WalkAudience is WalkFollowers over the author's followers and a post's
// audience together: the JIDs tracking any of a.Keys and the JIDs in
// a.JIDs, merged in JID order, each JID once however many reasons it has.
// Pages, cursors and the filter are WalkFollowers': the cursor is a JID, so
// a resumed walk misses and repeats nobody, among trackers too. The first
// round trip reads every tracker set with the first page of followers;
// the sets without trackers (most of a post's words) are not read again.
func (s *RedisStore) WalkAudience(ctx context.Context, author string, a fanout.Audience, after string, count int, all bool, page func(jids []string, last string) error) error {
	if len(a.Keys) == 0 && len(a.JIDs) == 0 {
		return s.WalkFollowers(ctx, author, after, count, all, page)
	}
	if err := s.shardsChecked(ctx); err != nil {
		return err
	}
	return s.walk(ctx, author, s.mergedPages(author, a.Keys, a.JIDs, count), after, all, page)
}
