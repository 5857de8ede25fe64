package testenv

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a Redis Cluster of masters without replicas, each a
// redis-server child process on loopback.
type RedisCluster struct {
	// Addrs are the masters' addresses; URL is the cluster in go-redis's
	// URL form (redis://first?addr=second&addr=third), as
	// STARLING_REDIS_URL takes it with STARLING_REDIS_CLUSTER=true.
	Addrs []string
	URL   string
	procs []*process
}

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// StartRedisCluster starts n masters with cluster mode on, shares the hash
// slots among them (CLUSTER ADDSLOTSRANGE), introduces them (CLUSTER MEET)
// and waits until every node reports the cluster ok. The bus ports are
// chosen like the client ports (cluster-port), never port+10000, which could
// fall in the kernel's ephemeral range.
func StartRedisCluster(t TB, n int) *RedisCluster {
	t.Helper()
	bin := need(t, "redis-server", "redis-server")
	rc := &RedisCluster{}
	var buses []int
	for range n {
		dir := t.TempDir()
		port, bus := FreePort(t), FreePort(t)
		p := startProcess(t, filepath.Join(dir, "redis.log"), bin,
			"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--daemonize", "no", "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--cluster-port", fmt.Sprint(bus),
			"--cluster-node-timeout", "2000")
		t.Cleanup(func() { _ = p.stop() })
		waitTCP(t, addr(port), 10*time.Second, p.exited, p.log)
		rc.Addrs = append(rc.Addrs, addr(port))
		rc.procs = append(rc.procs, p)
		buses = append(buses, bus)
	}
	ctx := context.Background()
	for i, a := range rc.Addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		lo, hi := i*clusterSlots/n, (i+1)*clusterSlots/n-1
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			c.Close()
			t.Fatalf("testenv: redis cluster: ADDSLOTSRANGE on %s: %v", a, err)
		}
		if i > 0 {
			host, port, _ := strings.Cut(a, ":")
			first := redis.NewClient(&redis.Options{Addr: rc.Addrs[0]})
			err := first.Do(ctx, "CLUSTER", "MEET", host, port, buses[i]).Err()
			first.Close()
			if err != nil {
				c.Close()
				t.Fatalf("testenv: redis cluster: MEET %s: %v", a, err)
			}
		}
		c.Close()
	}
	for _, a := range rc.Addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		Eventually(t, 20*time.Second, func() bool {
			info, err := c.ClusterInfo(ctx).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", n))
		}, "redis cluster node %s is not ok", a)
		c.Close()
	}
	rc.URL = "redis://" + rc.Addrs[0]
	for i, a := range rc.Addrs[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		rc.URL += sep + "addr=" + a
	}
	return rc
}

// Client returns a cluster client, closed when the test ends.
func (rc *RedisCluster) Client(t TB) *redis.ClusterClient {
	t.Helper()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: rc.Addrs})
	t.Cleanup(func() { _ = c.Close() })
	return c
}
