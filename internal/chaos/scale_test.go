package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"starling.dev/starling/fanout"
	"starling.dev/starling/internal/rediskeys"
	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/internal/testenv/stack"
)

// scaleForm is the size of the scale scenario: the short form runs in make
// test, the long one (STARLING_SCALE=long, `make scale`) is the figure.
type scaleForm struct {
	followers int
	gateways  int // the throughput is measured with 1..gateways
}

func scaleFormOf(t *testing.T) scaleForm {
	switch v := os.Getenv("STARLING_SCALE"); v {
	case "":
		return scaleForm{followers: 10_000, gateways: 2}
	case "long":
		return scaleForm{followers: 100_000, gateways: 3}
	default:
		t.Fatalf("STARLING_SCALE=%q: empty (short form) or long", v)
		return scaleForm{}
	}
}

// scaleSystem is the cluster shape on one machine: a 3-node JetStream
// cluster (R3 streams, a token), a Redis Cluster of 3 masters with a
// replica each, ejabberd with the counting sink, the API and the gateways
// as separate processes built from ./cmd.
type scaleSystem struct {
	*stack.Stack
	sink     *Sink
	nats     *testenv.NATSCluster
	js       jetstream.JetStream
	redis    *testenv.RedisCluster
	gateways []*stack.Gateway
	keys     rediskeys.Layout
}

func startScaleSystem(t *testing.T) *scaleSystem {
	t.Helper()
	dir := t.TempDir()
	if d := os.Getenv("STARLING_SCALE_DIR"); d != "" {
		dir = d // kept after the test, logs included
	}
	nc := testenv.StartNATSCluster(t, testenv.NATSClusterOptions{Token: clusterToken, Dir: filepath.Join(dir, "nats")})
	rc := testenv.StartRedisClusterWith(t, testenv.RedisClusterOptions{Masters: 3, Replicas: 1})
	srv := testenv.StartEjabberd(t, testenv.WithComponents(SinkDomain))
	level := "info"
	if os.Getenv("STARLING_SCALE_DIR") != "" {
		level = "debug" // the logs are kept: make them worth reading
	}
	s := stack.StartStack(t, stack.Options{
		XMPP: srv, Processes: true, NoGateway: true, RedisCluster: rc, LogLevel: level, Dir: dir,
		Env: map[string]string{
			"STARLING_NATS_URL": nc.URLs(), "STARLING_NATS_TOKEN": clusterToken, "STARLING_NATS_REPLICAS": "3",
			"STARLING_RATE_IP": "0", "STARLING_RATE_TOKEN": "0",
		},
	})
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"api.log", "gateway.log", "gateway-2.log", "gateway-3.log", "gateway-4.log"} {
				if p := filepath.Join(dir, name); fileExists(p) {
					t.Logf("%s:\n%s", name, testenv.Tail(p))
				}
			}
		}
	})
	js, err := jetstream.New(nc.Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	sink := StartSink(t, componentAddr(srv, SinkDomain), srv.Info().Secret, SinkDomain)
	return &scaleSystem{Stack: s, sink: sink, nats: nc, js: js, redis: rc, keys: rediskeys.Layout{Prefix: s.Prefix}}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// addGateway starts one more gateway process and waits until it is
// connected to ejabberd.
func (ss *scaleSystem) addGateway(t *testing.T) {
	t.Helper()
	ss.gateways = append(ss.gateways, ss.StartGateway(t, ss.Server.ComponentAddr))
}

// fanoutRun is one post's delivery to every follower.
type fanoutRun struct {
	took  time.Duration // from the 202 to the last follower's first copy
	dups  int
	stall time.Duration // longest gap between two reads with messages
	cpu   map[string]time.Duration
}

// deliver posts, waits until every follower has the post (and a second
// more for late duplicates) and returns the figures; inject, if not nil,
// runs once the first messages are out and returns what it did.
func (ss *scaleSystem) deliver(t *testing.T, tok string, followers []string, text string, inject func() string) fanoutRun {
	t.Helper()
	before := cpuByCommand(t)
	posted := time.Now()
	st := ss.Post(t, tok, text)
	if inject != nil {
		testenv.Eventually(t, 30*time.Second, func() bool { return ss.sink.Total(st.ID) >= len(followers)/20 }, "the fanout did not start")
		at := ss.sink.Total(st.ID)
		what := inject()
		if at >= len(followers) {
			t.Fatalf("%s: the fanout was over before the fault", what)
		}
		t.Logf("%s with %d of %d delivered, %s after the post", what, at, len(followers), time.Since(posted).Round(time.Millisecond))
	}
	testenv.Eventually(t, 3*time.Minute, func() bool { return everyone(ss.sink.Tally(st.ID), followers) == len(followers) },
		"followers lost the post: %v of %d have it", lazy(func() any { return everyone(ss.sink.Tally(st.ID), followers) }), len(followers))
	(&Run{Sink: ss.sink}).waitQuiet(st.ID, time.Second, 15*time.Second) // late duplicates count too
	tally := ss.sink.Tally(st.ID)
	run := fanoutRun{took: tally.Last.Sub(posted), dups: tally.Total - len(tally.Counts), stall: tally.LongestGap, cpu: cpuSince(t, before)}
	if inject == nil {
		// Without a fault, the last message is the last first copy.
		run.took = tally.Last.Sub(posted)
	}
	return run
}

// TestScaleOut is the cluster shape on one machine: 3-node NATS, a 3-master
// Redis Cluster with replicas, ejabberd, and 1, 2 (3 in the long form)
// gateway processes. One post goes to every follower with each count of
// gateways, and the throughput and every process's CPU are logged; then,
// with all of them, three posts each meet a fault mid-fanout: SIGKILL of a
// gateway, of the Redis master holding the author's followers, and of the
// DELIVERIES stream leader. Each time every follower gets the post,
// duplicates stay within what the batches in flight explain, and the stall
// is logged. On this 2-core machine ejabberd is the ceiling, so what is
// asserted of the counts is no loss, not speed.
func TestScaleOut(t *testing.T) {
	form := scaleFormOf(t)
	ss := startScaleSystem(t)
	tok := ss.CreateUser(t, Author, "Star")
	followers := Followers(form.followers)
	LoadFollowers(t, ss.Stack, Author, followers)
	ss.redis.WaitReplicated(t, 30*time.Second)

	var table []string
	var alone float64 // stanzas/s with one gateway
	for g := 1; g <= form.gateways; g++ {
		ss.addGateway(t)
		if g == 1 {
			// The first post after a start warms what a long-running system
			// has warm (connections, consumers, the pacer's measure of the
			// server); it is not counted.
			ss.deliver(t, tok, followers, "warming up", nil)
		}
		r := ss.deliver(t, tok, followers, fmt.Sprintf("with %d gateways", g), nil)
		if r.dups != 0 {
			t.Errorf("%d gateways: %d duplicates without a fault", g, r.dups)
		}
		rate := float64(form.followers) / r.took.Seconds()
		table = append(table, fmt.Sprintf("| %d | %d | %s | %.0f | %s |", g, form.followers, r.took.Round(time.Millisecond),
			rate, cpuShare(r.cpu, r.took)))
		if g == 1 {
			alone = rate
		} else if rate < alone/2 {
			// Generous: the machine's two cores are shared by everything.
			t.Errorf("%d gateways delivered %.0f stanzas/s, less than half of one gateway's %.0f", g, rate, alone)
		}
	}
	t.Logf("throughput (ejabberd, one connection per gateway):\n| gateways | followers | 202 → last | stanzas/s | CPU, share of one core |\n|---|---|---|---|---|\n%s",
		strings.Join(table, "\n"))

	// Every batch in flight on every gateway may be sent again after a
	// fault, and no more.
	bound := len(ss.gateways) * inFlightBatches * fanout.BatchSize
	check := func(name string, r fanoutRun) {
		t.Logf("%s: every follower has the post; %s from the 202 to the last, longest stall %s, %d duplicates (bound %d)",
			name, r.took.Round(time.Millisecond), r.stall.Round(time.Millisecond), r.dups, bound)
		if r.dups > bound {
			t.Errorf("%s: %d duplicates, more than the %d batches in flight explain (%d)", name, r.dups, len(ss.gateways)*inFlightBatches, bound)
		}
	}

	victim := ss.gateways[0]
	check("gateway SIGKILL", ss.deliver(t, tok, followers, "through a gateway's death", func() string {
		if err := victim.Kill(); err != nil {
			t.Fatal(err)
		}
		return "gateway 1 killed"
	}))
	ss.gateways = ss.gateways[1:]

	master := ss.redis.MasterOf(t, ss.keys.Followers(Author))
	check("Redis master SIGKILL", ss.deliver(t, tok, followers, "through a Redis failover", func() string {
		if err := master.Kill(); err != nil {
			t.Fatal(err)
		}
		_, promoted := ss.redis.WaitPromotion(t, master, 30*time.Second)
		return fmt.Sprintf("Redis master %s (holding the followers) killed, its replica promoted %s later",
			master.Addr, promoted.Round(time.Millisecond))
	}))

	leader, err := ss.nats.StreamLeader(context.Background(), ss.js, fanout.DeliveriesStream)
	if err != nil {
		t.Fatal(err)
	}
	check("NATS DELIVERIES leader SIGKILL", ss.deliver(t, tok, followers, "through a NATS leader's death", func() string {
		if err := leader.Kill(); err != nil {
			t.Fatal(err)
		}
		return "NATS node " + leader.Name + " (DELIVERIES leader) killed"
	}))
}

// cpuByCommand sums the CPU time (user + system) of the live processes of
// each command name that the scale scenario runs.
func cpuByCommand(t *testing.T) map[string]time.Duration {
	t.Helper()
	watched := map[string]string{
		"gateway": "gateways", "api": "api", "beam.smp": "ejabberd", "redis-server": "redis", "nats-server": "nats",
	}
	out := map[string]time.Duration{}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		name, ok := watched[s[open+1:end]]
		if !ok {
			continue
		}
		f := strings.Fields(s[end+2:])
		if len(f) < 13 {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		out[name] += time.Duration(utime+stime) * time.Second / clockTicks
	}
	return out
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat's times
// (100 on Linux everywhere Starling runs).
const clockTicks = 100

// cpuSince is the CPU each command spent since before; a process that
// exited in between is not counted.
func cpuSince(t *testing.T, before map[string]time.Duration) map[string]time.Duration {
	now := cpuByCommand(t)
	for k, v := range now {
		now[k] = max(0, v-before[k])
	}
	return now
}

// cpuShare renders CPU use over d as shares of one core, by command.
func cpuShare(cpu map[string]time.Duration, d time.Duration) string {
	names := make([]string, 0, len(cpu))
	for k := range cpu {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", k, 100*cpu[k].Seconds()/d.Seconds()))
	}
	return strings.Join(parts, ", ")
}
