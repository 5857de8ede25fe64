package subscribers

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"starling.dev/starling/fanout"
)

var _ fanout.FollowerPager = (*RedisStore)(nil)

// Follow makes the bare JID follow author. It reports whether the relation is
// new. The caller checks that the author exists.
func (s *RedisStore) Follow(ctx context.Context, author, jid string) (bool, error) {
	if err := s.shardsChecked(ctx); err != nil {
		return false, err
	}
	var added *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		added = p.ZAddNX(ctx, s.followersKey(author, jid), redis.Z{Member: jid})
		p.HSet(ctx, s.keys.Following(jid), author, followingMark)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("subscribers: follow %s -> %s: %w", jid, author, err)
	}
	return added.Val() == 1, nil
}

// Unfollow ends the relation. It reports whether there was one.
func (s *RedisStore) Unfollow(ctx context.Context, author, jid string) (bool, error) {
	if err := s.shardsChecked(ctx); err != nil {
		return false, err
	}
	var removed *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		removed = p.ZRem(ctx, s.followersKey(author, jid), jid)
		p.HDel(ctx, s.keys.Following(jid), author)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("subscribers: unfollow %s -> %s: %w", jid, author, err)
	}
	return removed.Val() == 1, nil
}

// Following returns the authors a bare JID follows, sorted.
func (s *RedisStore) Following(ctx context.Context, jid string) ([]string, error) {
	authors, err := s.rdb.HKeys(ctx, s.keys.Following(jid)).Result()
	if err != nil {
		return nil, fmt.Errorf("subscribers: following of %s: %w", jid, err)
	}
	sort.Strings(authors)
	return authors, nil
}

// An author's followers are a sorted set whose every score is 0, so Redis
// orders it by the JIDs' bytes and ZRANGE BYLEX pages through it from any
// JID: the last JID of a page is a cursor that means the same on any server,
// before and after a restart, and stays valid while members come and go
// (SSCAN's cursor does neither: after a restart it walks a different table).

// WalkFollowers calls page with successive pages of at most count of an
// author's followers in JID order, after the JID after ("" for the start).
// Unless all is set, only followers who get posts now are passed: not
// paused, not known to be offline (unknown presence counts as reachable),
// not recently unreachable. last is the last JID the page covered, passed
// or not. Each round trip is one pipeline holding the current page's states
// and the next page's ZRANGE, so a walk of P pages costs P+1 round trips.
// With several follower shards the pages are the same; the ZRANGEs are
// those of the shards running short, a page's worth each, and once in a
// long while a page needs a round trip more (shardPages). The slice passed
// to page is reused after it returns.
func (s *RedisStore) WalkFollowers(ctx context.Context, author, after string, count int, all bool, page func(jids []string, last string) error) error {
	if err := s.shardsChecked(ctx); err != nil {
		return err
	}
	return s.walk(ctx, author, s.pages(author, count, true), after, all, page)
}

// walk pages through what pages reads, as WalkFollowers describes.
func (s *RedisStore) walk(ctx context.Context, author string, pages followerPages, after string, all bool, page func(jids []string, last string) error) error {
	if err := pages.start(ctx, after); err != nil {
		return fmt.Errorf("subscribers: followers of %s: %w", author, err)
	}
	keys, more, err := pages.next(ctx)
	if err != nil {
		return fmt.Errorf("subscribers: followers of %s: %w", author, err)
	}
	var states []*redis.SliceCmd
	var filtered []string
	scripted := scriptedStates(s.rdb)
	var script pageStateReader
	for len(keys) > 0 {
		last := keys[len(keys)-1]
		states = states[:0]
		now := time.Now()
		if !all || more {
			_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				switch {
				case all:
				case scripted:
					script.queue(ctx, s, p, keys, now)
				default:
					for _, jid := range keys {
						states = append(states, p.HMGet(ctx, s.keys.State(jid), stateFields...))
					}
				}
				if more {
					pages.queue(ctx, p, last)
				}
				return nil
			})
			if err != nil && !redis.HasErrorPrefix(err, "NOSCRIPT") {
				return fmt.Errorf("subscribers: followers of %s: %w", author, err)
			}
		}
		deliver := keys
		if !all {
			var mask string
			if scripted {
				if mask, err = script.mask(ctx, s); err != nil {
					return fmt.Errorf("subscribers: states of %s's followers: %w", author, err)
				}
			}
			filtered = filtered[:0]
			for i, jid := range keys {
				ok := scripted && i < len(mask) && mask[i] == '1' || !scripted && stateOf(states[i].Val()).deliverable(now)
				if ok {
					filtered = append(filtered, jid)
				}
			}
			deliver = filtered
		}
		if err := page(deliver, last); err != nil {
			return err
		}
		if !more {
			return nil
		}
		if keys, more, err = pages.next(ctx); err != nil {
			return fmt.Errorf("subscribers: followers of %s: %w", author, err)
		}
	}
	return nil
}

// followersAfter is the ZRANGE of up to count followers after the JID
// after ("" for the first).
func (s *RedisStore) followersAfter(ctx context.Context, c redis.Cmdable, key, after string, count int) *redis.StringSliceCmd {
	return c.ZRangeArgs(ctx, redis.ZRangeArgs{Key: key, Start: lexAfter(after), Stop: "+", ByLex: true, Count: int64(count)})
}

// FollowerPage returns one page of up to count of an author's followers,
// whatever their state, in JID order, appended to buf, and the cursor of
// the next page ("" when there is none). The cursor is opaque to callers
// (base64url of the page's last JID) and, like WalkFollowers', stays valid
// while the set changes and across Redis restarts. It serves the API's
// follower listing; deliveries use WalkFollowers.
func (s *RedisStore) FollowerPage(ctx context.Context, author, cursor string, count int, buf []string) ([]string, string, error) {
	if err := s.shardsChecked(ctx); err != nil {
		return buf, "", err
	}
	after, err := base64.RawURLEncoding.DecodeString(cursor)
	if err == nil && cursor != "" && !strings.Contains(string(after), "@") {
		err = errors.New("not a follower JID")
	}
	if err != nil {
		return buf, "", cursorError{err}
	}
	pages := s.pages(author, count, false)
	err = pages.start(ctx, string(after))
	var keys []string
	more := false
	if err == nil {
		keys, more, err = pages.next(ctx)
	}
	if err != nil {
		return buf, "", fmt.Errorf("subscribers: followers of %s: %w", author, err)
	}
	next := ""
	if more {
		next = base64.RawURLEncoding.EncodeToString([]byte(keys[len(keys)-1]))
	}
	return append(buf, keys...), next, nil
}

// cursorError is the error of a follower page cursor this store did not
// make. Its BadCursor method lets a caller tell it from a store failure
// without importing this package.
type cursorError struct{ err error }

func (e cursorError) Error() string { return "subscribers: bad cursor: " + e.err.Error() }
func (e cursorError) Unwrap() error { return e.err }
func (cursorError) BadCursor() bool { return true }
