package fanout

import (
	"sync"
	"time"

	"starling.dev/starling"
)

// staleLogMemory bounds how many post ids staleLog remembers; past it, it
// forgets them all and a post may log a second line.
const staleLogMemory = 4096

// tooOld reports how long ago the post was made and whether that is past
// MaxLag. Retractions are never too old: a follower who holds the post
// should lose it however late. A post without a creation time (not made by
// the API) is not judged.
func (p *Pipeline) tooOld(post starling.Post) (time.Duration, bool) {
	if p.cfg.MaxLag < 0 || post.Retracts != "" || post.CreatedAt.IsZero() {
		return 0, false
	}
	lag := time.Since(post.CreatedAt)
	return lag, lag > p.cfg.MaxLag
}

// logStale logs the first time a post is found too old, not once per batch:
// a celebrity's stale post has thousands.
func (p *Pipeline) logStale(post starling.Post, lag time.Duration, msg string) {
	if p.stale.first(post.ID) {
		p.log.Warn(msg, "post", post.ID, "author", post.Author, "age", lag.Round(time.Second), "max_lag", p.cfg.MaxLag)
	}
}

// staleLog remembers the posts already logged as too old.
type staleLog struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

// first reports whether id is new to the log, and remembers it.
func (l *staleLog) first(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.seen[id]; ok {
		return false
	}
	if l.seen == nil || len(l.seen) >= staleLogMemory {
		l.seen = make(map[string]struct{})
	}
	l.seen[id] = struct{}{}
	return true
}
