package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"starling.dev/starling/internal/testenv"
)

const sinkDomain = "sink.localhost"

// loadFollowers makes n JIDs at domain follow author, straight into Redis in
// pipelined chunks (the follower set only: what a fanout reads).
func (s *stack) loadFollowers(t testing.TB, author string, n int, domain string) {
	t.Helper()
	rdb := s.redis.Client(t)
	ctx := context.Background()
	key := s.prefix + "f:{" + author + "}"
	const chunk = 10_000
	members := make([]redis.Z, 0, chunk)
	for i := 0; i < n; i += chunk {
		members = members[:0]
		for j := i; j < min(i+chunk, n); j++ {
			members = append(members, redis.Z{Member: fmt.Sprintf("f%d@%s", j, domain)}) // a sorted set, all scored 0
		}
		if err := rdb.ZAdd(ctx, key, members...).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// metric reads one unlabelled value from the gateway's /metrics.
func (s *stack) metric(t testing.TB, name string) string {
	t.Helper()
	resp, err := http.Get(s.ops + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return v
		}
	}
	t.Fatalf("metric %s not found", name)
	return ""
}

// TestSmallPostDuringBigFanout: while a post goes to 100,000 followers, a
// small author's post still reaches its follower promptly. Without the
// first-page lane it would queue behind most of the big fanout (several
// seconds at Prosody's ~20k stanzas/s); the bound here is generous.
func TestSmallPostDuringBigFanout(t *testing.T) {
	const followers = 100_000
	srv := testenv.StartProsody(t, testenv.WithComponents(sinkDomain))
	s := startStack(t, srv)
	sink := testenv.StartSink(t, srv.ComponentAddrOf(sinkDomain), srv.Secret, sinkDomain)
	star := s.createUser(t, "star")
	alice := s.createUser(t, "alice")
	bob := s.client(t, "bob")
	bob.Ask(t, s.srv.ComponentDomain, "follow alice")
	s.loadFollowers(t, "star", followers, sinkDomain)

	s.post(t, star, "to the multitudes")
	testenv.Eventually(t, 30*time.Second, func() bool { return sink.Count() >= 2_000 }, "the big fanout did not start")
	start := time.Now()
	st := s.post(t, alice, "small and quick")
	expectPost(t, s, bob, st, "small and quick")
	took, during := time.Since(start), sink.Count()
	t.Logf("small post delivered in %s while the big fanout had delivered %d of %d", took, during, followers)
	if during >= followers {
		t.Fatalf("the big fanout was over before the small post arrived; the test shows nothing")
	}
	if took > 2*time.Second {
		t.Fatalf("the small post took %s during a big fanout", took)
	}
	testenv.Eventually(t, 2*time.Minute, func() bool { return sink.Count() >= followers }, "the big fanout did not complete: %d of %d", sink.Count(), followers)
}

// TestPacingKeepsEjabberdConnected: ejabberd drops a component whose queue
// passes 10,000 stanzas. A 100,000-follower fanout, written as fast as
// the sender may, completes on a single connection.
func TestPacingKeepsEjabberdConnected(t *testing.T) {
	const followers = 100_000
	srv := testenv.StartEjabberd(t, testenv.WithComponents(sinkDomain))
	s := startStack(t, srv)
	sink := testenv.StartSink(t, srv.ComponentAddrOf(sinkDomain), srv.Secret, sinkDomain)
	star := s.createUser(t, "star")
	s.loadFollowers(t, "star", followers, sinkDomain)
	s.post(t, star, "to the multitudes, through ejabberd")
	testenv.Eventually(t, 2*time.Minute, func() bool { return sink.Count() >= followers }, "the fanout did not complete: %d of %d", sink.Count(), followers)
	if n := s.metric(t, "starling_xmpp_connects_total"); n != "1" {
		t.Fatalf("the component connected %s times: ejabberd dropped it", n)
	}
	if got := sink.Count(); got != followers {
		t.Fatalf("the sink counted %d messages for %d followers", got, followers)
	}
}
