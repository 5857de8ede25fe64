package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"starling.dev/starling/fanout"
	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/internal/testenv/stack"
)

// clusterToken is the NATS token of the cluster tests: every node requires
// it, and the gateway and the API get it from STARLING_NATS_TOKEN.
const clusterToken = "cluster-test-s3cret"

// clusterSystem is the stack on a 3-node JetStream cluster of nats-server
// processes: Prosody with the counting sink, Redis, and the gateway and the
// API (in this process) given all three URLs, the token and 3 replicas.
type clusterSystem struct {
	*stack.Stack
	sink    *Sink
	cluster *testenv.NATSCluster
	js      jetstream.JetStream // on the cluster (Stack.JS is the stack's own NATS, unused)
}

func startClusterSystem(t *testing.T) *clusterSystem {
	t.Helper()
	dir := t.TempDir()
	cluster := testenv.StartNATSCluster(t, testenv.NATSClusterOptions{Token: clusterToken, Dir: dir})
	nodeLogs := map[string]string{}
	for _, n := range cluster.Nodes {
		nodeLogs[n.Name] = n.Log
	}
	logf := stackLog(t, dir, nodeLogs)
	srv := testenv.StartProsody(t, testenv.WithComponents(SinkDomain))
	s := stack.StartStack(t, stack.Options{
		XMPP: srv, LogLevel: "info", Log: logf,
		Env: map[string]string{
			"STARLING_NATS_URL":      cluster.URLs(),
			"STARLING_NATS_TOKEN":    clusterToken,
			"STARLING_NATS_REPLICAS": "3",
			"STARLING_RATE_IP":       "0", "STARLING_RATE_TOKEN": "0",
		},
	})
	sink := StartSink(t, componentAddr(srv, SinkDomain), srv.Info().Secret, SinkDomain)
	js, err := jetstream.New(cluster.Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	cs := &clusterSystem{Stack: s, sink: sink, cluster: cluster, js: js}
	cs.waitStreams(t)
	return cs
}

// waitStreams waits until the gateway or the API has created POSTS and
// DELIVERIES with 3 replicas, each with a leader and two current followers,
// and the gateway consumes from both.
func (cs *clusterSystem) waitStreams(t *testing.T) {
	t.Helper()
	var last string
	testenv.Eventually(t, 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for stream, consumer := range map[string]string{fanout.PostsStream: fanout.FanoutConsumer, fanout.DeliveriesStream: fanout.SenderConsumer} {
			s, err := cs.js.Stream(ctx, stream)
			if err != nil {
				last = fmt.Sprintf("%s: %v", stream, err)
				return false
			}
			info, err := s.Info(ctx)
			if err != nil {
				last = fmt.Sprintf("%s: %v", stream, err)
				return false
			}
			if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
				last = fmt.Sprintf("%s: %d replicas configured, cluster %+v", stream, info.Config.Replicas, info.Cluster)
				return false
			}
			for _, r := range info.Cluster.Replicas {
				if !r.Current {
					last = fmt.Sprintf("%s: replica %s not current", stream, r.Name)
					return false
				}
			}
			if _, err := s.Consumer(ctx, consumer); err != nil {
				last = fmt.Sprintf("%s/%s: %v", stream, consumer, err)
				return false
			}
		}
		return true
	}, "the R3 streams and their consumers did not appear: %v", &last)
}

// everyone reports how many of followers have the post, at least once.
func everyone(tally Tally, followers []string) int {
	n := 0
	for _, f := range followers {
		if tally.Counts[f] > 0 {
			n++
		}
	}
	return n
}

// TestNATSClusterLeaderKill: on a 3-node JetStream cluster that requires a
// token, the gateway and the API (given all three URLs and the token) create
// R3 streams; a post goes to a few thousand followers, and mid-fanout the
// leader of DELIVERIES is killed with SIGKILL. Every follower still gets the
// post; duplicates, the election and the delivery stall are logged, not
// asserted. With STARLING_NATS_FAILOVER=1 the leader of POSTS is killed too,
// in a second system (each case takes ~15 s, mostly the election);
// STARLING_NATS_FAILOVER_FOLLOWERS changes the audience (5000).
func TestNATSClusterLeaderKill(t *testing.T) {
	n := 5000
	if v := os.Getenv("STARLING_NATS_FAILOVER_FOLLOWERS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 100 {
			t.Fatalf("STARLING_NATS_FAILOVER_FOLLOWERS=%q: a number, at least 100", v)
		}
	}
	t.Run(fanout.DeliveriesStream, func(t *testing.T) { leaderKill(t, fanout.DeliveriesStream, n) })
	t.Run(fanout.PostsStream, func(t *testing.T) {
		if os.Getenv("STARLING_NATS_FAILOVER") == "" {
			t.Skip("set STARLING_NATS_FAILOVER=1 to kill the POSTS leader too")
		}
		leaderKill(t, fanout.PostsStream, n)
	})
}

func leaderKill(t *testing.T, stream string, n int) {
	cs := startClusterSystem(t)
	ctx := context.Background()
	tok := cs.CreateUser(t, Author, "Star")
	followers := Followers(n)
	LoadFollowers(t, cs.Stack, Author, followers)
	leader, err := cs.cluster.StreamLeader(ctx, cs.js, stream)
	if err != nil {
		t.Fatal(err)
	}

	posted := time.Now()
	st := cs.Post(t, tok, "one post to many, through a leader's crash")
	// Mid-fanout: the first messages are out, most are not.
	testenv.Eventually(t, 30*time.Second, func() bool { return cs.sink.Total(st.ID) >= n/20 }, "the fanout did not start")
	atKill := cs.sink.Total(st.ID)
	killed := time.Now()
	if err := leader.Kill(); err != nil {
		t.Fatal(err)
	}
	if atKill >= n {
		t.Fatalf("the fanout was over (%d of %d) before the leader died: the test shows nothing", atKill, n)
	}

	// The new leader, as the survivors report it.
	var elected time.Duration
	var newLeader string
	testenv.Eventually(t, 60*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if l, err := cs.cluster.StreamLeader(ctx, cs.js, stream); err == nil && l != leader {
			elected, newLeader = time.Since(killed), l.Name
			return true
		}
		return false
	}, "%s elected no new leader after %s died", stream, leader.Name)

	testenv.Eventually(t, 90*time.Second, func() bool { return everyone(cs.sink.Tally(st.ID), followers) == n },
		"followers lost the post: %v of %d have it", lazy(func() any { return everyone(cs.sink.Tally(st.ID), followers) }), n)
	(&Run{Sink: cs.sink}).waitQuiet(st.ID, time.Second, 15*time.Second) // late duplicates count too

	tally := cs.sink.Tally(st.ID)
	dups := 0
	for _, c := range tally.Counts {
		dups += c - 1
	}
	t.Logf("%s leader %s killed %s after the post, with %d of %d delivered; new leader %s after %s; "+
		"all %d followers have the post, the last message arrived %s after the kill (%s after the post); %d duplicates; "+
		"longest delivery stall %s (began %s after the post)",
		stream, leader.Name, killed.Sub(posted).Round(time.Millisecond), atKill, n, newLeader, elected.Round(time.Millisecond),
		n, tally.Last.Sub(killed).Round(time.Millisecond), tally.Last.Sub(posted).Round(time.Millisecond), dups,
		tally.LongestGap.Round(time.Millisecond), tally.GapStart.Sub(posted).Round(time.Millisecond))
}

// lazy formats as what its function returns when the message is made.
type lazy func() any

func (l lazy) String() string { return fmt.Sprint(l()) }

// stackLog creates dir/stack.log for the logs of an in-process gateway and
// API, closes it when the test ends, and if the test failed shows its tail
// and those of the servers' logs (name → path). Call it before starting the
// stack: its cleanup then runs after the stack's.
func stackLog(t *testing.T, dir string, servers map[string]string) *os.File {
	t.Helper()
	path := filepath.Join(dir, "stack.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		if !t.Failed() {
			return
		}
		t.Logf("gateway and API log:\n%s", testenv.Tail(path))
		for name, log := range servers {
			t.Logf("%s log %s:\n%s", name, log, testenv.Tail(log))
		}
	})
	return f
}
