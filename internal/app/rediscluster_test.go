package app

import (
	"context"
	"testing"
	"time"

	"starling.dev/starling/internal/testenv"
)

// TestRedisClusterSetting: with STARLING_REDIS_CLUSTER=true the URL's seed
// nodes make a cluster client, and the stores built on it work across the
// masters of a real Redis Cluster (an account, a follow, a profile).
func TestRedisClusterSetting(t *testing.T) {
	rc := testenv.StartRedisCluster(t, 3)
	env := map[string]string{
		"STARLING_REDIS_CLUSTER": "true", "STARLING_REDIS_URL": rc.URL,
		"STARLING_XMPP_DOMAIN": "microblog.example.org",
	}
	cfg, err := ParseAPI(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.RedisCluster {
		t.Fatal("STARLING_REDIS_CLUSTER=true not read")
	}
	rdb, err := openRedis(cfg.RedisURL, cfg.RedisCluster)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	if err := redisReady(rdb)(ctx); err != nil {
		t.Fatalf("readiness on the cluster: %v", err)
	}
	st, err := openStores(rdb, testenv.Prefix(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(ctx, "alice", "Alice", "h", time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, j := range []string{"a@x.org", "b@y.org", "c@z.org"} {
		if _, err := st.Follow(ctx, "alice", j); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := st.Profile(ctx, "alice"); err != nil || p.Followers != 3 {
		t.Fatalf("profile on the cluster: %+v %v", p, err)
	}
	if _, err := openRedis("redis://127.0.0.1:1?addr=bad:url:x", true); err == nil {
		t.Error("a malformed cluster URL was accepted")
	}
}
