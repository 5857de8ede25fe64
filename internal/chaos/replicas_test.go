package chaos

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/internal/testenv/stack"
)

// replicaFollowers is the audience of the replica tests: 20 batches, so
// that both gateways take part and a kill lands mid-fanout.
const replicaFollowers = 10_000

// metricOf reads one unlabelled value from a gateway's /metrics.
func metricOf(t *testing.T, g *stack.Gateway, name string) float64 {
	t.Helper()
	resp, err := http.Get(g.Ops + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not found at %s", name, g.Ops)
	return 0
}

// wantEveryoneOnce waits until every follower has post id and fails on
// duplicates; it returns when the last message arrived.
func wantEveryoneOnce(t *testing.T, sink *Sink, id string, jids []string, within time.Duration) Tally {
	t.Helper()
	testenv.Eventually(t, within, func() bool { return len(sink.Tally(id).Counts) >= len(jids) },
		"post %s reached %d of %d followers", id, len(sink.Tally(id).Counts), len(jids))
	tally := sink.Tally(id)
	for _, j := range jids {
		if n := tally.Counts[j]; n != 1 {
			t.Errorf("%s received post %s %d times, want once", j, id, n)
		}
	}
	return tally
}

// TestReplicasOnEjabberd: two gateway processes, each holding two
// component connections to one ejabberd domain, which balances every
// stanza for the domain over all four, the answers to the gateways'
// delivery pings included. Both gateways deliver, the answers that reach
// the wrong gateway are relayed to the right one, and every follower gets
// the post exactly once: a lost answer would time its batch out and send
// it again.
func TestReplicasOnEjabberd(t *testing.T) {
	env := map[string]string{"STARLING_XMPP_CONNECTIONS": "2"}
	s, sink := StartSystem(t, "ejabberd", env)
	second := s.StartGateway(t, s.Server.ComponentAddr)
	gateways := []*stack.Gateway{s.Gateway, second}
	for _, g := range gateways {
		testenv.Eventually(t, 10*time.Second, func() bool { return metricOf(t, g, "starling_xmpp_connected") == 2 },
			"gateway %s holds two connections", g.Ops)
	}
	token := s.CreateUser(t, "star", "Star")
	jids := Followers(replicaFollowers)
	LoadFollowers(t, s, "star", jids)

	st := s.Post(t, token, "one post, four connections, two gateways")
	tally := wantEveryoneOnce(t, sink, st.ID, jids, 60*time.Second)
	s.Drained(t, 30*time.Second)

	var forwarded, relayed float64
	for i, g := range gateways {
		delivered := metricOf(t, g, "starling_fanout_deliveries_total")
		f, r := metricOf(t, g, "starling_xmpp_ping_answers_forwarded_total"), metricOf(t, g, "starling_xmpp_ping_answers_relayed_total")
		t.Logf("gateway %d: delivered %.0f, ping answers forwarded %.0f, relayed in %.0f, send errors %.0f",
			i+1, delivered, f, r, metricOf(t, g, "starling_fanout_send_errors_total"))
		if delivered == 0 {
			t.Errorf("gateway %d delivered nothing: the work is not shared", i+1)
		}
		forwarded += f
		relayed += r
	}
	if forwarded == 0 || relayed != forwarded {
		t.Errorf("%.0f answers forwarded, %.0f relayed in: want some, and each settling the ping it answers", forwarded, relayed)
	}
	t.Logf("%d followers in %s", replicaFollowers, tally.Last.Sub(tally.First).Round(time.Millisecond))
}

// TestProsodyTakeover: Prosody keeps one connection per component, so of
// two gateways one holds it and the other stands by. The holder is killed
// with SIGKILL in the middle of a fanout; the standby connects within
// seconds and finishes it: every follower gets the post, and the next
// post too.
func TestProsodyTakeover(t *testing.T) {
	s, sink := StartSystem(t, "prosody", nil)
	standby := s.StartStandbyGateway(t, s.Server.ComponentAddr)
	if s.Connected(standby) {
		t.Fatal("both gateways hold a connection to Prosody, which allows one")
	}
	token := s.CreateUser(t, "star", "Star")
	jids := Followers(replicaFollowers)
	LoadFollowers(t, s, "star", jids)

	st := s.Post(t, token, "before and after the takeover")
	testenv.Eventually(t, 30*time.Second, func() bool { return sink.Total(st.ID) > 0 }, "the fanout did not start")
	atKill := sink.Total(st.ID)
	if err := s.Gateway.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	testenv.Eventually(t, 15*time.Second, func() bool { return s.Connected(standby) }, "the standby did not take the connection over")
	took := time.Since(killed)
	tally := sink.Tally(st.ID)
	testenv.Eventually(t, 60*time.Second, func() bool { tally = sink.Tally(st.ID); return len(tally.Counts) >= len(jids) },
		"post reached %d of %d followers after the takeover", len(sink.Tally(st.ID).Counts), len(jids))
	dups := tally.Total - len(tally.Counts)
	t.Logf("holder killed with %d of %d delivered; standby connected %s later; last message %s after the kill; %d duplicates",
		atKill, len(jids), took.Round(time.Millisecond), tally.Last.Sub(killed).Round(time.Millisecond), dups)
	if atKill >= len(jids) {
		t.Log("the fanout was over before the kill; the takeover is still checked below")
	}
	if took > 10*time.Second {
		t.Errorf("takeover took %s", took)
	}
	s.Gateway = standby
	next := s.Post(t, token, "after the takeover")
	wantEveryoneOnce(t, sink, next.ID, jids, 60*time.Second)
}
