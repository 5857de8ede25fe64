package httpapi

import (
	"sync"
	"time"
)

// DefaultAuthCacheTTL is how long a token's owner, once read from Redis,
// is believed without asking again (Config.AuthCacheTTL).
const DefaultAuthCacheTTL = time.Second

// maxAuthCache bounds the tokens remembered; past it, expired entries are
// dropped, then arbitrary ones.
const maxAuthCache = 1 << 16

// authCache remembers, for AuthCacheTTL, which author owns a token hash and
// their display name, so that a client posting many statuses costs Redis
// two reads per TTL instead of two per post. A rotation, a deletion or a
// new display name made through this process clears the author's entries
// at once; another replica believes the old answer for at most the TTL.
// Unknown tokens are never remembered, so random tokens cannot fill it.
type authCache struct {
	ttl time.Duration // zero: the cache is off
	now func() time.Time

	mu      sync.RWMutex
	entries map[string]authEntry // token hash → owner
}

type authEntry struct {
	who   caller
	until time.Time
}

func newAuthCache(ttl time.Duration, now func() time.Time) *authCache {
	return &authCache{ttl: ttl, now: now, entries: make(map[string]authEntry)}
}

// get returns the owner of hash if it was read less than the TTL ago.
func (c *authCache) get(hash string) (caller, bool) {
	if c.ttl == 0 {
		return caller{}, false
	}
	c.mu.RLock()
	e, ok := c.entries[hash]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.until) {
		return caller{}, false
	}
	return e.who, true
}

// put remembers that who owns hash.
func (c *authCache) put(hash string, who caller) {
	if c.ttl == 0 {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxAuthCache {
		c.evict(now)
	}
	c.entries[hash] = authEntry{who: who, until: now.Add(c.ttl)}
}

// evict drops the expired entries, and if that is not enough an eighth of
// the rest (map order is random enough). c.mu is held.
func (c *authCache) evict(now time.Time) {
	for h, e := range c.entries {
		if !now.Before(e.until) {
			delete(c.entries, h)
		}
	}
	for h := range c.entries {
		if len(c.entries) < maxAuthCache-maxAuthCache/8 {
			return
		}
		delete(c.entries, h)
	}
}

// forget drops every token of user (rotated, deleted, renamed).
func (c *authCache) forget(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, e := range c.entries {
		if e.who.user == user {
			delete(c.entries, h)
		}
	}
}
