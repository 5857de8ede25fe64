package testenv

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a Redis Cluster of redis-server child processes on
// loopback: masters sharing the hash slots, each with its replicas, if any.
type RedisCluster struct {
	// Addrs are every node's address, masters first; URL is the cluster in
	// go-redis's URL form (redis://first?addr=second&addr=third...), as
	// STARLING_REDIS_URL takes it with STARLING_REDIS_CLUSTER=true. Every
	// node is a seed, so a client starting after a master died still finds
	// the cluster.
	Addrs []string
	URL   string
	// Nodes are the servers, masters first, then the replicas in the order
	// of their masters.
	Nodes []*RedisNode
}

// RedisNode is one redis-server of a RedisCluster.
type RedisNode struct {
	Addr string
	// ID is the node's cluster id (CLUSTER MYID).
	ID string
	// Master is the master this node was started to replicate; nil for a
	// master. A failover changes the roles, not this field.
	Master *RedisNode
	// Log is the server's log file.
	Log string

	proc *process
	rdb  *redis.Client // this node alone, for the helpers' checks

	mu     sync.Mutex
	killed time.Time
}

// RedisClusterOptions says what StartRedisClusterWith builds; the zero
// value is three masters without replicas.
type RedisClusterOptions struct {
	// Masters is how many masters share the slots; zero means 3.
	Masters int
	// Replicas is how many replicas each master has; zero means none.
	Replicas int
	// NodeTimeout is cluster-node-timeout, how long a node may go unheard
	// before the others take it for failed. Zero means 1 s with replicas
	// (a replica is then promoted 2–3 s after its master dies), 2 s
	// without.
	NodeTimeout time.Duration
}

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// StartRedisCluster starts n masters without replicas; see
// StartRedisClusterWith.
func StartRedisCluster(t TB, n int) *RedisCluster {
	t.Helper()
	return StartRedisClusterWith(t, RedisClusterOptions{Masters: n})
}

// StartRedisClusterWith starts the masters and replicas o asks for with
// cluster mode on, shares the hash slots among the masters (CLUSTER
// ADDSLOTSRANGE), introduces every node (CLUSTER MEET), attaches each
// replica to its master (CLUSTER REPLICATE), and returns once the cluster
// is settled (see WaitSettled). The bus ports are chosen like the client
// ports (cluster-port), never port+10000, which could fall in the kernel's
// ephemeral range. Replication is diskless without delay, so a replica is
// in sync within milliseconds. Every node stops when the test ends.
func StartRedisClusterWith(t TB, o RedisClusterOptions) *RedisCluster {
	t.Helper()
	bin := need(t, "redis-server", "redis-server")
	masters := o.Masters
	if masters == 0 {
		masters = 3
	}
	timeout := o.NodeTimeout
	if timeout == 0 {
		timeout = 2 * time.Second
		if o.Replicas > 0 {
			timeout = time.Second
		}
	}
	rc := &RedisCluster{}
	total := masters * (1 + o.Replicas)
	buses := make([]int, total)
	for i := range total {
		var n *RedisNode
		n, buses[i] = startClusterNode(t, bin, timeout)
		if i >= masters {
			n.Master = rc.Nodes[(i-masters)%masters]
		}
		rc.Nodes = append(rc.Nodes, n)
		rc.Addrs = append(rc.Addrs, n.Addr)
	}
	ctx := context.Background()
	for _, n := range rc.Nodes {
		id, err := n.rdb.Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatalf("testenv: redis cluster: MYID on %s: %v", n.Addr, err)
		}
		n.ID = id
	}
	for i, m := range rc.Nodes[:masters] {
		lo, hi := i*clusterSlots/masters, (i+1)*clusterSlots/masters-1
		if err := m.rdb.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("testenv: redis cluster: ADDSLOTSRANGE on %s: %v", m.Addr, err)
		}
	}
	first := rc.Nodes[0]
	for i, n := range rc.Nodes[1:] {
		host, port, _ := strings.Cut(n.Addr, ":")
		if err := first.rdb.Do(ctx, "CLUSTER", "MEET", host, port, buses[i+1]).Err(); err != nil {
			t.Fatalf("testenv: redis cluster: MEET %s: %v", n.Addr, err)
		}
	}
	for _, n := range rc.Nodes[masters:] {
		// A replica must have learnt its master's id by gossip first.
		var last []error
		Eventually(t, 20*time.Second, func() bool {
			err := n.rdb.Do(ctx, "CLUSTER", "REPLICATE", n.Master.ID).Err()
			last = append(last[:0], err)
			return err == nil
		}, "redis cluster: REPLICATE %s on %s: %v", n.Master.Addr, n.Addr, &last)
	}
	rc.WaitSettled(t, 30*time.Second)
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

// startClusterNode starts one redis-server in cluster mode and returns it
// with its bus port.
func startClusterNode(t TB, bin string, timeout time.Duration) (*RedisNode, int) {
	t.Helper()
	dir := t.TempDir()
	port, bus := FreePort(t), FreePort(t)
	p := startProcess(t, filepath.Join(dir, "redis.log"), bin,
		"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no", "--cluster-enabled", "yes",
		"--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--cluster-port", fmt.Sprint(bus),
		"--cluster-node-timeout", fmt.Sprint(timeout.Milliseconds()),
		"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
	t.Cleanup(func() { _ = p.stop() })
	waitTCP(t, addr(port), 10*time.Second, p.exited, p.log)
	n := &RedisNode{Addr: addr(port), Log: p.log, proc: p}
	// Short timeouts and no retries: the checks poll, and a dead node
	// must cost them little.
	n.rdb = redis.NewClient(&redis.Options{Addr: n.Addr, DialTimeout: 500 * time.Millisecond,
		ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1, PoolSize: 2})
	t.Cleanup(func() { _ = n.rdb.Close() })
	return n, bus
}

// Client returns a cluster client over every node, closed when the test
// ends. Like the gateway's, it reloads the slot map every second, so it
// follows a failover within a second of it.
func (rc *RedisCluster) Client(t TB) *redis.ClusterClient {
	t.Helper()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: rc.Addrs, ClusterStateReloadInterval: time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Alive reports whether the node's process is running.
func (n *RedisNode) Alive() bool {
	select {
	case <-n.proc.exited:
		return false
	default:
		return true
	}
}

// Kill kills the node with SIGKILL, as a crash would, and waits for it to
// be gone; KilledAt is then the moment of the signal.
func (n *RedisNode) Kill() error {
	n.mu.Lock()
	n.killed = time.Now()
	n.mu.Unlock()
	if err := n.proc.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("testenv: kill redis-server %s: %w", n.Addr, err)
	}
	if !n.proc.WaitExit(10 * time.Second) {
		return fmt.Errorf("testenv: redis-server %s survived SIGKILL for 10 s", n.Addr)
	}
	return nil
}

// KilledAt is when Kill signalled the node, or the zero time.
func (n *RedisNode) KilledAt() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.killed
}

// live is the nodes still running.
func (rc *RedisCluster) live() []*RedisNode {
	var out []*RedisNode
	for _, n := range rc.Nodes {
		if n.Alive() {
			out = append(out, n)
		}
	}
	return out
}

// MasterOf returns the master that serves key now, as the first live node
// answering sees it (CLUSTER KEYSLOT, then CLUSTER SHARDS).
func (rc *RedisCluster) MasterOf(t TB, key string) *RedisNode {
	t.Helper()
	n, err := rc.masterOf(context.Background(), key)
	if err != nil {
		t.Fatalf("testenv: redis cluster: master of %q: %v", key, err)
	}
	return n
}

func (rc *RedisCluster) masterOf(ctx context.Context, key string) (*RedisNode, error) {
	var errs []string
	for _, q := range rc.live() {
		slot, err := q.rdb.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", q.Addr, err))
			continue
		}
		shards, err := q.rdb.ClusterShards(ctx).Result()
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", q.Addr, err))
			continue
		}
		for _, sh := range shards {
			for _, r := range sh.Slots {
				if slot < r.Start || slot > r.End {
					continue
				}
				for _, nd := range sh.Nodes {
					if nd.Role == "master" {
						if m := rc.byID(nd.ID); m != nil {
							return m, nil
						}
					}
				}
			}
		}
		return nil, fmt.Errorf("%s knows no master of slot %d", q.Addr, slot)
	}
	return nil, fmt.Errorf("no live node answered: %s", strings.Join(errs, "; "))
}

// byID returns the node whose cluster id is id, or nil.
func (rc *RedisCluster) byID(id string) *RedisNode {
	for _, n := range rc.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Promoted returns the replica of dead (as started) that has taken its
// place as a master, or nil while none has. The node's own word counts: it
// takes over its master's slots in the step that makes it a master, and the
// others learn it within a gossip round (WaitSettled waits for that).
func (rc *RedisCluster) Promoted(dead *RedisNode) *RedisNode {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, n := range rc.live() {
		if n.Master != dead {
			continue
		}
		if info, err := replicationInfo(ctx, n); err == nil && info["role"] == "master" {
			return n
		}
	}
	return nil
}

// WaitPromotion waits until a replica of dead has been promoted and returns
// it with the time from dead's kill to the promotion as seen by polling.
func (rc *RedisCluster) WaitPromotion(t TB, dead *RedisNode, within time.Duration) (*RedisNode, time.Duration) {
	t.Helper()
	var p *RedisNode
	Eventually(t, within, func() bool { p = rc.Promoted(dead); return p != nil },
		"redis cluster: no replica of %s was promoted", dead.Addr)
	return p, time.Since(dead.KilledAt())
}

// WaitSettled waits until the live nodes agree on a healthy cluster:
// each reports cluster_state:ok and knows every node, each replica's link
// to its master is up, and every live node's CLUSTER NODES gives each live
// node the role that node reports itself (a replica under its master).
func (rc *RedisCluster) WaitSettled(t TB, within time.Duration) {
	t.Helper()
	var why []string
	Eventually(t, within, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		why = rc.unsettled(ctx)
		return len(why) == 0
	}, "redis cluster not settled: %v", &why)
}

// unsettled lists what keeps the cluster from being settled (see
// WaitSettled); empty means it is.
func (rc *RedisCluster) unsettled(ctx context.Context) []string {
	var why []string
	live := rc.live()
	// What each live node says it is: "" for a master, else its master's id.
	masterOf := map[string]string{}
	for _, n := range live {
		info, err := replicationInfo(ctx, n)
		if err != nil {
			return []string{fmt.Sprintf("%s: INFO replication: %v", n.Addr, err)}
		}
		if info["role"] == "master" {
			masterOf[n.ID] = ""
			continue
		}
		m := rc.byAddr(info["master_host"] + ":" + info["master_port"])
		if m == nil {
			return []string{fmt.Sprintf("%s replicates unknown %s:%s", n.Addr, info["master_host"], info["master_port"])}
		}
		masterOf[n.ID] = m.ID
		if info["master_link_status"] != "up" {
			why = append(why, fmt.Sprintf("%s: link to master %s %s", n.Addr, m.Addr, info["master_link_status"]))
		}
	}
	for _, n := range live {
		info, err := n.rdb.ClusterInfo(ctx).Result()
		if err != nil {
			why = append(why, fmt.Sprintf("%s: CLUSTER INFO: %v", n.Addr, err))
			continue
		}
		if !strings.Contains(info, "cluster_state:ok") {
			why = append(why, n.Addr+": cluster_state not ok")
		}
		if !strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d\r", len(rc.Nodes))) {
			why = append(why, fmt.Sprintf("%s: does not know all %d nodes", n.Addr, len(rc.Nodes)))
		}
		nodes, err := n.rdb.ClusterNodes(ctx).Result()
		if err != nil {
			why = append(why, fmt.Sprintf("%s: CLUSTER NODES: %v", n.Addr, err))
			continue
		}
		why = append(why, checkView(n, nodes, masterOf)...)
	}
	return why
}

// checkView compares one node's CLUSTER NODES with what the live nodes say
// they are (masterOf: node id → its master's id, "" for a master).
func checkView(n *RedisNode, nodes string, masterOf map[string]string) []string {
	var why []string
	seen := map[string]bool{}
	for line := range strings.SplitSeq(strings.TrimSpace(nodes), "\n") {
		// <id> <addr> <flags> <master id or -> ...
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		want, live := masterOf[f[0]]
		if !live {
			continue
		}
		seen[f[0]] = true
		flags := "," + f[2] + ","
		switch {
		case strings.Contains(flags, ",fail") || strings.Contains(flags, ",handshake,"):
			why = append(why, fmt.Sprintf("%s sees %s as %s", n.Addr, f[1], f[2]))
		case want == "" && !strings.Contains(flags, ",master,"):
			why = append(why, fmt.Sprintf("%s sees master %s as %s", n.Addr, f[1], f[2]))
		case want != "" && (!strings.Contains(flags, ",slave,") || f[3] != want):
			why = append(why, fmt.Sprintf("%s sees replica %s as %s of %s", n.Addr, f[1], f[2], f[3]))
		}
	}
	if len(seen) != len(masterOf) {
		why = append(why, fmt.Sprintf("%s lists %d of the %d live nodes", n.Addr, len(seen), len(masterOf)))
	}
	return why
}

// byAddr returns the node at addr, or nil.
func (rc *RedisCluster) byAddr(a string) *RedisNode {
	for _, n := range rc.Nodes {
		if n.Addr == a {
			return n
		}
	}
	return nil
}

// WaitReplicated waits until every live replica has applied all that its
// master had written when the call began, so that a master killed next
// loses none of it.
func (rc *RedisCluster) WaitReplicated(t TB, within time.Duration) {
	t.Helper()
	ctx := context.Background()
	want := map[string]int64{} // master addr → its offset now
	for _, n := range rc.live() {
		info, err := replicationInfo(ctx, n)
		if err != nil {
			t.Fatalf("testenv: redis cluster: INFO replication on %s: %v", n.Addr, err)
		}
		if info["role"] == "master" {
			off, _ := strconv.ParseInt(info["master_repl_offset"], 10, 64)
			want[n.Addr] = off
		}
	}
	var behind []string
	Eventually(t, within, func() bool {
		behind = behind[:0]
		for _, n := range rc.live() {
			info, err := replicationInfo(ctx, n)
			if err != nil {
				behind = append(behind, fmt.Sprintf("%s: %v", n.Addr, err))
				continue
			}
			if info["role"] != "slave" {
				continue
			}
			m := info["master_host"] + ":" + info["master_port"]
			if off, _ := strconv.ParseInt(info["slave_repl_offset"], 10, 64); off < want[m] {
				behind = append(behind, fmt.Sprintf("%s at %d of %s's %d", n.Addr, off, m, want[m]))
			}
		}
		return len(behind) == 0
	}, "redis cluster: replicas behind: %v", &behind)
}

// replicationInfo is the node's INFO replication as fields.
func replicationInfo(ctx context.Context, n *RedisNode) (map[string]string, error) {
	s, err := n.rdb.Info(ctx, "replication").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for line := range strings.SplitSeq(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out, nil
}
