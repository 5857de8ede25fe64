package chaos

import (
	"testing"
	"time"

	"starling.dev/starling/fanout"
	"starling.dev/starling/internal/rediskeys"
	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/internal/testenv/stack"
)

// inFlightBatches is how many delivery batches the gateway may have handed
// to the XMPP server and not yet seen confirmed: the send stage's default
// first-page and later-page workers (2 + 4). Only those can be sent again
// after a failure, so they bound the duplicates of one fault.
const inFlightBatches = 6

// TestRedisClusterMasterFailover: the gateway and the API run on a Redis
// Cluster of 3 masters with one replica each. An author with 5,000
// followers posts, and once deliveries are under way the master holding
// the author's keys (the followers the fanout walks, its progress, the
// send counts) is killed with SIGKILL. Its replica is promoted; every
// follower still gets the post, each at most twice and with no more
// duplicates than the batches in flight could make; the gateway is ready
// afterwards and a second post reaches everyone. The promotion, the stall
// and the duplicates are logged.
func TestRedisClusterMasterFailover(t *testing.T) {
	const n = 5000
	rc := testenv.StartRedisClusterWith(t, testenv.RedisClusterOptions{Masters: 3, Replicas: 1})
	dir := t.TempDir()
	nodeLogs := map[string]string{}
	for _, nd := range rc.Nodes {
		nodeLogs["redis "+nd.Addr] = nd.Log
	}
	logf := stackLog(t, dir, nodeLogs)
	srv := testenv.StartProsody(t, testenv.WithComponents(SinkDomain))
	s := stack.StartStack(t, stack.Options{
		XMPP: srv, LogLevel: "info", Log: logf, RedisCluster: rc,
		Env: map[string]string{"STARLING_RATE_IP": "0", "STARLING_RATE_TOKEN": "0"},
	})
	sink := StartSink(t, componentAddr(srv, SinkDomain), srv.Info().Secret, SinkDomain)
	run := &Run{Stack: s, Sink: sink}
	tok := s.CreateUser(t, Author, "Star")
	followers := Followers(n)
	LoadFollowers(t, s, Author, followers)
	// The follower set must be on the replica when its master dies: a
	// write the replica never got is lost by any failover, which is not
	// what this test is about.
	rc.WaitReplicated(t, 10*time.Second)
	keys := rediskeys.Layout{Prefix: s.Prefix}
	victim := rc.MasterOf(t, keys.Followers(Author))

	posted := time.Now()
	st := s.Post(t, tok, "one post to many, through a Redis failover")
	testenv.Eventually(t, 30*time.Second, func() bool { return sink.Total(st.ID) > 0 }, "the deliveries did not begin")
	atKill := sink.Total(st.ID)
	view, viewErr := run.fanoutState()
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := victim.KilledAt()
	if atKill >= n {
		t.Fatalf("the deliveries were over (%d of %d) before the master died: the test shows nothing", atKill, n)
	}
	t.Logf("master %s (holding %s) killed %s after the post, with %d of %d delivered; fanout then: %+v (err %v)",
		victim.Addr, keys.Followers(Author), killed.Sub(posted).Round(time.Millisecond), atKill, n, view, viewErr)

	// One poll for three events: the first message after the kill, the
	// replica's promotion, and the last follower served.
	var next, promotedAfter time.Duration
	var promoted *testenv.RedisNode
	testenv.Eventually(t, 60*time.Second, func() bool {
		total := sink.Total(st.ID)
		if next == 0 && total > atKill {
			next = time.Since(killed)
		}
		if promoted == nil {
			if promoted = rc.Promoted(victim); promoted != nil {
				promotedAfter = time.Since(killed)
			}
		}
		return promoted != nil && total >= n && everyone(sink.Tally(st.ID), followers) == n
	}, "after the master's death: replica promoted %v; followers with the post %v of %d",
		lazy(func() any { return promoted != nil }), lazy(func() any { return everyone(sink.Tally(st.ID), followers) }), n)
	run.waitQuiet(st.ID, time.Second, 15*time.Second) // late duplicates count too

	tally := sink.Tally(st.ID)
	dups, most := 0, 0
	for _, c := range tally.Counts {
		dups += c - 1
		most = max(most, c)
	}
	owner := rc.MasterOf(t, keys.FanoutProgress(Author, st.ID))
	t.Logf("replica %s promoted %s after the kill; the post's progress %s is now on %s (a replica of %s as started)",
		promoted.Addr, promotedAfter.Round(time.Millisecond), keys.FanoutProgress(Author, st.ID), owner.Addr, addrOf(owner.Master))
	// Messages already with the XMPP server arrive just after the kill; the
	// stall is the longest gap, and deliveries resume at its end.
	t.Logf("all %d followers have the post: first message after the kill +%s, last +%s (%s after the post); "+
		"longest delivery gap %s, from +%s to +%s after the kill; %d duplicates (at most %d copies to one follower)",
		n, next.Round(time.Millisecond), tally.Last.Sub(killed).Round(time.Millisecond), tally.Last.Sub(posted).Round(time.Millisecond),
		tally.LongestGap.Round(time.Millisecond), tally.GapStart.Sub(killed).Round(time.Millisecond),
		tally.GapStart.Add(tally.LongestGap).Sub(killed).Round(time.Millisecond), dups, most)
	if bound := inFlightBatches * fanout.BatchSize; dups > bound || most > 2 {
		t.Errorf("%d duplicates, up to %d copies to one follower: more than the %d batches in flight at the kill explain (≤ %d, ≤ 2 each)",
			dups, most, inFlightBatches, bound)
	}

	// The cluster, the gateway and the API are whole again.
	rc.WaitSettled(t, 30*time.Second)
	testenv.Eventually(t, 15*time.Second, s.ComponentConnected, "the gateway is not ready after the failover")
	if _, err := s.Call("GET", "/readyz", "", nil, nil); err != nil {
		t.Errorf("the API is not ready after the failover: %v", err)
	}

	// A second post, on the promoted master, reaches everyone.
	again := time.Now()
	st2 := s.Post(t, tok, "and one after it")
	accepted := time.Since(again)
	testenv.Eventually(t, 30*time.Second, func() bool {
		return sink.Total(st2.ID) >= n && everyone(sink.Tally(st2.ID), followers) == n
	}, "followers lost the post after the failover: %v of %d have it", lazy(func() any { return everyone(sink.Tally(st2.ID), followers) }), n)
	t.Logf("the post after the failover was accepted in %s and reached all %d followers in %s",
		accepted.Round(time.Millisecond), n, time.Since(again).Round(time.Millisecond))
	s.Drained(t, 30*time.Second)
}

// addrOf is the node's address, or "none".
func addrOf(n *testenv.RedisNode) string {
	if n == nil {
		return "none"
	}
	return n.Addr
}
