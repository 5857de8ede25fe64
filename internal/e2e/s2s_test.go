package e2e

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"starling.dev/starling/internal/app"
	"starling.dev/starling/internal/testenv"
)

// The s2s mode tests: the gateway is the XMPP server of microblog.test and
// federates itself with a real Prosody and a real ejabberd, whose users
// are the followers (STARLING_XMPP_MODE=s2s).

// s2sDomain is the gateway's domain in s2s mode: a .test name, which
// resolvers do not look up in real DNS.
const s2sDomain = "microblog.test"

// s2sServers are the servers the s2s tests federate with.
var s2sServers = []struct {
	name  string
	start func(testing.TB, testenv.S2SPeer) testenv.S2SServer
}{
	{"prosody", func(t testing.TB, p testenv.S2SPeer) testenv.S2SServer { return testenv.StartProsodyS2S(t, p) }},
	{"ejabberd", func(t testing.TB, p testenv.S2SPeer) testenv.S2SServer { return testenv.StartEjabberdS2S(t, p) }},
}

// eachS2SServer runs f as a subtest per server, on a fresh stack whose
// gateway federates with it.
func eachS2SServer(t *testing.T, f func(t *testing.T, s *stack, srv testenv.S2SServer)) {
	for _, srv := range s2sServers {
		t.Run(srv.name, func(t *testing.T) {
			s, server := startS2SStack(t, srv.start, testenv.S2SPeer{})
			f(t, s, server)
		})
	}
}

// startS2SStack starts a server federating with the gateway, then the
// stack, with the gateway in s2s mode on a port the server finds through
// the test DNS server; peer's TLS and Limited apply. Without TLS the
// gateway allows plain text (STARLING_S2S_INSECURE).
func startS2SStack(t testing.TB, start func(testing.TB, testenv.S2SPeer) testenv.S2SServer, peer testenv.S2SPeer, env ...map[string]string) (*stack, testenv.S2SServer) {
	t.Helper()
	peer.DNS, peer.Domain, peer.Port = testenv.StartDNS(t), s2sDomain, testenv.FreePort(t)
	server := start(t, peer)
	settings := map[string]string{
		"STARLING_XMPP_MODE": "s2s", "STARLING_S2S_ADDR": testenv.Addr(peer.Port),
		"STARLING_S2S_HOSTS":  server.Info().Host + "=" + server.S2SAddr(),
		"STARLING_S2S_SECRET": "e2e dialback secret",
	}
	if peer.TLS {
		cert := testenv.SelfSignedCert(t, "", s2sDomain)
		settings["STARLING_TLS_CERT"], settings["STARLING_TLS_KEY"] = cert.CertFile, cert.KeyFile
	} else {
		settings["STARLING_S2S_INSECURE"] = "true"
	}
	return startStack(t, server, append([]map[string]string{settings}, env...)...), server
}

func TestS2SFollowPostUnfollow(t *testing.T) {
	eachS2SServer(t, func(t *testing.T, s *stack, _ testenv.S2SServer) {
		alice := s.createUser(t, "alice")
		bob := s.client(t, "bob")
		if r := bob.Ask(t, s2sDomain, "follow alice"); !strings.Contains(r.Body, "You now follow Alice (alice)") {
			t.Fatalf("follow reply %q", r.Body)
		}
		if p := s.profile(t, "alice"); p.Followers != 1 || p.JID != "alice@"+s2sDomain {
			t.Fatalf("profile after follow: %+v", p)
		}
		st := s.post(t, alice, "hello over s2s <&>")
		expectPost(t, s, bob, st, "hello over s2s <&>")
		if r := bob.Ask(t, s.authorJID("alice"), "unfollow"); !strings.Contains(r.Body, "no longer follow") {
			t.Fatalf("unfollow reply %q", r.Body)
		}
		s.post(t, alice, "nobody hears this")
		s.drained(t)
		roundTrip(t, s, bob)
		for _, m := range bob.Pending() {
			if m.HasBody && strings.HasPrefix(m.From, "alice@") {
				t.Fatalf("a post after unfollow: %+v", m)
			}
		}
	})
}

// TestS2SRosterAndDisco follows by roster subscription and asks the
// service what it is: presence, disco and ad-hoc commands work as in
// component mode.
func TestS2SRosterAndDisco(t *testing.T) {
	eachS2SServer(t, func(t *testing.T, s *stack, server testenv.S2SServer) {
		alice := s.createUser(t, "alice")
		first := s.post(t, alice, "a status for the roster")
		server.Register(t, "bob", "bob-pw")
		bob := testenv.DialClient(t, server.Info().C2SAddr, "bob", server.Info().Host, "bob-pw", testenv.ApproveSubscriptions())
		aliceJID := s.authorJID("alice")
		bob.SendPresence(t, aliceJID, stanza.SubscribePresence)
		avail := bob.NextPresence(t, 15*time.Second, func(p testenv.Presence) bool { return bare(p.From) == aliceJID && p.Type == "" })
		if !strings.HasPrefix(avail.Status, first.Text) {
			t.Errorf("alice's presence status %q, want her latest post", avail.Status)
		}
		testenv.Eventually(t, 10*time.Second, func() bool { return s.profile(t, "alice").Followers == 1 }, "no follower after the roster subscription")
		st := s.post(t, alice, "hello, roster over s2s")
		expectPost(t, s, bob, st, "hello, roster over s2s")

		info := bob.IQ(t, s2sDomain, stanza.GetIQ, `<query xmlns="http://jabber.org/protocol/disco#info"/>`)
		if !strings.Contains(info, `type="result"`) || !strings.Contains(info, "http://jabber.org/protocol/commands") {
			t.Errorf("disco#info of the service: %s", info)
		}
		items := bob.IQ(t, s2sDomain, stanza.GetIQ, `<query xmlns="http://jabber.org/protocol/disco#items" node="http://jabber.org/protocol/commands"/>`)
		if !strings.Contains(items, `type="result"`) || !strings.Contains(items, "<item ") {
			t.Errorf("ad-hoc command list: %s", items)
		}
		if r := bob.IQ(t, aliceJID, stanza.GetIQ, `<vCard xmlns="vcard-temp"/>`); !strings.Contains(r, "<FN>Alice</FN>") {
			t.Errorf("alice's vCard: %s", r)
		}

		bob.SendPresence(t, aliceJID, stanza.UnsubscribePresence)
		testenv.Eventually(t, 10*time.Second, func() bool { return s.profile(t, "alice").Followers == 0 }, "still a follower after unsubscribing")
	})
}

// TestS2SServerRestart restarts the followers' server: the gateway's
// streams to it end, and the next post after its users log in again
// reaches them over new ones.
func TestS2SServerRestart(t *testing.T) {
	eachS2SServer(t, func(t *testing.T, s *stack, server testenv.S2SServer) {
		alice := s.createUser(t, "alice")
		bob := s.client(t, "bob")
		bob.Ask(t, s2sDomain, "follow alice")
		expectPost(t, s, bob, s.post(t, alice, "before"), "before")

		bob.Close()
		server.Restart(t)
		bob = testenv.DialClient(t, server.Info().C2SAddr, "bob", server.Info().Host, "bob-pw")
		// A post written while the server was down is counted as a bounce
		// (as the server's own s2s would bounce it in component mode):
		// post until one arrives.
		testenv.Eventually(t, 30*time.Second, func() bool {
			st := s.post(t, alice, "after the restart")
			return arrived(bob, st.ID, 3*time.Second)
		}, "no post reached bob after his server restarted")
	})
}

// arrived reports whether c receives the message with that origin-id within
// the time given (other messages are dropped).
func arrived(c *testenv.Client, originID string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for _, m := range c.Pending() {
			if m.OriginID == originID {
				return true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// TestS2SBurst: many posts in a row all arrive, each once.
func TestS2SBurst(t *testing.T) {
	n := 40
	if os.Getenv("STARLING_S2S_LONG") != "" {
		n = 1000
	}
	eachS2SServer(t, func(t *testing.T, s *stack, _ testenv.S2SServer) {
		alice := s.createUser(t, "alice")
		bob := s.client(t, "bob")
		bob.Ask(t, s2sDomain, "follow alice")
		var ids []string
		for i := range n {
			ids = append(ids, s.post(t, alice, "burst "+strconv.Itoa(i)).ID)
		}
		got := map[string]int{}
		deadline := time.Now().Add(60 * time.Second)
		for len(got) < n && time.Now().Before(deadline) {
			m := bob.Next(t, time.Until(deadline))
			if strings.HasPrefix(m.Body, "burst ") {
				got[m.OriginID]++
			}
		}
		for _, id := range ids {
			if got[id] != 1 {
				t.Errorf("post %s arrived %d times", id, got[id])
			}
		}
		if len(got) != n {
			t.Fatalf("%d of %d posts arrived", len(got), n)
		}
	})
}

// TestS2STLS federates over STARTTLS only: each server requires it and has
// a self-signed certificate, as has the gateway (STARLING_TLS_CERT, no
// STARLING_S2S_INSECURE).
func TestS2STLS(t *testing.T) {
	for _, srv := range s2sServers {
		t.Run(srv.name, func(t *testing.T) {
			s, _ := startS2SStack(t, srv.start, testenv.S2SPeer{TLS: true})
			alice := s.createUser(t, "alice")
			bob := s.client(t, "bob")
			if r := bob.Ask(t, s2sDomain, "follow alice"); !strings.Contains(r.Body, "You now follow Alice") {
				t.Fatalf("follow reply %q", r.Body)
			}
			expectPost(t, s, bob, s.post(t, alice, "over TLS"), "over TLS")
		})
	}
}

// TestS2SReplicas runs two gateways for the domain. DNS names only the
// second, so the remote server's streams to the domain, and with them the
// answers to the first gateway's delivery pings, reach the second, which
// also verifies the first's dialback keys (they share the secret) and
// answers the follower's commands. Both pull deliveries; the answers to
// the first's pings travel to it over NATS.
func TestS2SReplicas(t *testing.T) {
	dns := testenv.StartDNS(t)
	first, second := testenv.FreePort(t), testenv.FreePort(t)
	server := testenv.StartProsodyS2S(t, testenv.S2SPeer{Domain: s2sDomain, Port: second, DNS: dns})
	env := map[string]string{
		"STARLING_XMPP_MODE": "s2s", "STARLING_S2S_ADDR": testenv.Addr(first),
		"STARLING_S2S_HOSTS": "localhost=" + server.S2SAddr(), "STARLING_S2S_SECRET": "shared by the replicas",
		"STARLING_S2S_INSECURE": "true",
	}
	s := startStack(t, server, env)

	// The second gateway, in this process, on the same NATS and Redis.
	env2 := maps.Clone(env)
	maps.Copy(env2, map[string]string{
		"STARLING_S2S_ADDR": testenv.Addr(second), "STARLING_XMPP_DOMAIN": s2sDomain, "STARLING_NATS_URL": s.NATS.URL,
		"STARLING_REDIS_URL": s.redis.URL, "STARLING_REDIS_PREFIX": s.prefix, "STARLING_METRICS_ADDR": "127.0.0.1:0",
		"STARLING_COMMAND_RATE": "50", "STARLING_COMMAND_BURST": "50",
	})
	cfg, err := app.ParseGateway(nil, func(k string) (string, bool) { v, ok := env2[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ops := make(chan string, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() {
		done <- app.RunGateway(ctx, cfg, log, app.GatewayHooks{MetricsListening: func(a string) { ops <- "http://" + a }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("second gateway: %v", err)
		}
	})
	secondOps := <-ops
	testenv.Eventually(t, 15*time.Second, func() bool {
		resp, err := http.Get(secondOps + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}, "the second gateway is not ready")

	alice := s.createUser(t, "alice")
	bob := s.client(t, "bob")
	if r := bob.Ask(t, s2sDomain, "follow alice"); !strings.Contains(r.Body, "You now follow Alice") {
		t.Fatalf("follow reply %q", r.Body)
	}
	const posts = 20
	want := map[string]bool{}
	for i := range posts {
		want[s.post(t, alice, "replicated "+strconv.Itoa(i)).ID] = true
	}
	got := map[string]int{}
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < posts && time.Now().Before(deadline) {
		if m := bob.Next(t, time.Until(deadline)); want[m.OriginID] {
			got[m.OriginID]++
		}
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("post %s arrived %d times", id, got[id])
		}
	}
	// The first gateway's batches were confirmed by answers that reached
	// the second (unless the second sent all 20 posts itself).
	relayed, err := strconv.ParseFloat(s.metric(t, "starling_xmpp_ping_answers_relayed_total"), 64)
	if err != nil || relayed < 1 {
		t.Fatalf("answers relayed to the first gateway: %v (%v)", relayed, err)
	}
	t.Logf("%v ping answers reached the second gateway and were relayed to the first", relayed)
}
