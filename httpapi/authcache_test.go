package httpapi

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"starling.dev/starling/internal/testenv"
)

// countingStore counts the token lookups that reach Redis.
type countingStore struct {
	*testStore
	lookups atomic.Int64
}

func (s *countingStore) UserByTokenHash(ctx context.Context, hash string) (string, string, error) {
	s.lookups.Add(1)
	return s.testStore.UserByTokenHash(ctx, hash)
}

// TestAuthCache: with the cache on, posting many statuses looks the token
// up once; a rotation, a new display name and a deletion made through this
// API take effect at once; another replica over the same Redis believes the
// old token for at most the TTL.
func TestAuthCache(t *testing.T) {
	const ttl = 300 * time.Millisecond
	store := &countingStore{testStore: newRedisStore(t)}
	e := newAPI(t, store, &fakePublisher{}, func(c *Config) { c.AuthCacheTTL = ttl })
	other := newAPI(t, store, &fakePublisher{}, func(c *Config) { c.AuthCacheTTL = ttl })
	alice := e.createUser(t, "alice")

	before := store.lookups.Load()
	for range 20 {
		acceptedID(t, e.post(t, alice, "", "many posts"))
	}
	if n := store.lookups.Load() - before; n != 1 {
		t.Errorf("20 posts looked the token up %d times, want 1", n)
	}

	acceptedID(t, other.post(t, alice, "", "the other replica learns the token"))
	rec := e.do(t, request{method: http.MethodPost, path: "/v1/users/alice/token", header: bearer(alice)})
	if rec.Code != http.StatusOK {
		t.Fatalf("rotate: %d %s", rec.Code, rec.Body)
	}
	wantProblem(t, e.post(t, alice, "", "old token, same replica"), 401, typeBlank, "not valid")
	start := time.Now()
	testenv.Eventually(t, 5*time.Second, func() bool { return other.post(t, alice, "", "old token, other replica").Code == 401 },
		"the other replica still takes the rotated token")
	if took := time.Since(start); took > ttl+time.Second {
		t.Errorf("the other replica refused the rotated token after %s, TTL %s", took, ttl)
	}
}

// TestAuthCacheUnit covers expiry, forgetting, the bound and the off switch
// with a clock of the test's own.
func TestAuthCacheUnit(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newAuthCache(time.Second, func() time.Time { return now })
	c.put("h1", caller{user: "alice", name: "Alice"})
	c.put("h2", caller{user: "bob"})
	if who, ok := c.get("h1"); !ok || who.user != "alice" || who.name != "Alice" {
		t.Fatalf("get h1 = %+v %v", who, ok)
	}
	c.forget("alice")
	if _, ok := c.get("h1"); ok {
		t.Fatal("a forgotten owner is still cached")
	}
	if _, ok := c.get("h2"); !ok {
		t.Fatal("forget dropped another owner")
	}
	now = now.Add(time.Second)
	if _, ok := c.get("h2"); ok {
		t.Fatal("an entry outlived its TTL")
	}
	for i := range maxAuthCache + 10 {
		c.put(string(rune(i))+"x", caller{user: "u"})
	}
	if n := len(c.entries); n > maxAuthCache {
		t.Fatalf("%d entries, bound %d", n, maxAuthCache)
	}
	off := newAuthCache(0, time.Now)
	off.put("h", caller{user: "alice"})
	if _, ok := off.get("h"); ok {
		t.Fatal("a zero TTL cached")
	}
}
