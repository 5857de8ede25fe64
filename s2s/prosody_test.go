package s2s_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/s2s"
)

// TestProsody federates with a real Prosody, both ways, in plain text and
// over TLS: a message to a user logged in there, that user's message back,
// and a ping to the server whose answer comes back on Prosody's own stream.
func TestProsody(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", secure), func(t *testing.T) {
			dns := testenv.StartDNS(t)
			port := testenv.FreePort(t)
			pros := testenv.StartProsodyS2S(t, testenv.S2SPeer{Domain: "microblog.test", Port: port, DNS: dns, TLS: secure})
			cfg := s2s.Config{
				Domain: "microblog.test", Secret: "dialback secret", Addr: testenv.Addr(port),
				Hosts: map[string]string{"localhost": pros.S2SAddr()}, Insecure: !secure,
			}
			if secure {
				cert := testenv.SelfSignedCert(t, "", "microblog.test")
				cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}}
			}
			gw := startNode(t, cfg)
			pros.Register(t, "bob", "bobpass")
			bob := testenv.DialClient(t, pros.C2SAddr, "bob", "localhost", "bobpass")

			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			start := time.Now()
			o, err := gw.srv.Stream(ctx, "localhost")
			if err != nil {
				t.Fatalf("stream to Prosody: %v\nProsody's log:\n%s", err, pros.DebugLog())
			}
			t.Logf("stream to Prosody ready in %s, TLS %v", time.Since(start).Round(time.Millisecond), o.Secure())
			if o.Secure() != secure {
				t.Fatalf("Secure() = %v", o.Secure())
			}
			writeMessage(t, o, "alice@microblog.test", "bob@localhost", "hello bob")
			m := bob.Next(t, 10*time.Second)
			if m.From != "alice@microblog.test" || m.Body != "hello bob" {
				t.Fatalf("bob got %+v", m)
			}

			bob.Send(t, "alice@microblog.test", "hello alice")
			got := gw.rec.next(t, 10*time.Second)
			if got.Name != "message" || got.Body != "hello alice" || !strings.HasPrefix(got.From, "bob@localhost/") {
				t.Fatalf("the gateway got %+v", got)
			}

			err = o.Write(func(w *bufio.Writer) error {
				_, err := w.WriteString(`<iq type="get" from="microblog.test" to="localhost" id="p1"><ping xmlns="urn:xmpp:ping"/></iq>`)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := gw.rec.next(t, 10*time.Second); got.Name != "iq" || got.From != "localhost" {
				t.Fatalf("the gateway got %+v, want Prosody's answer to its ping", got)
			}
		})
	}
}

// TestProsodyPlaintextRefused: a gateway that requires TLS refuses a
// Prosody that has none, both ways: it will not open a stream to it, and
// Prosody's stream to it is closed with policy-violation, so a user's
// message never reaches the gateway.
func TestProsodyPlaintextRefused(t *testing.T) {
	dns := testenv.StartDNS(t)
	port := testenv.FreePort(t)
	pros := testenv.StartProsodyS2S(t, testenv.S2SPeer{Domain: "microblog.test", Port: port, DNS: dns})
	cert := testenv.SelfSignedCert(t, "", "microblog.test")
	gw := startNode(t, s2s.Config{
		Domain: "microblog.test", Secret: "dialback secret", Addr: testenv.Addr(port),
		Hosts: map[string]string{"localhost": pros.S2SAddr()}, TLS: &tls.Config{Certificates: []tls.Certificate{cert.TLS}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err := gw.srv.Stream(ctx, "localhost")
	if !errors.Is(err, s2s.ErrUnreachable) || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("stream to a Prosody without TLS: %v, want ErrUnreachable about TLS", err)
	}

	pros.Register(t, "bob", "bobpass")
	bob := testenv.DialClient(t, pros.C2SAddr, "bob", "localhost", "bobpass")
	bob.Send(t, "alice@microblog.test", "let me in")
	testenv.Eventually(t, 10*time.Second, func() bool { return gw.value(t, "starling_s2s_refused_total", "plaintext") >= 2 },
		"the gateway did not refuse Prosody's plaintext stream")
	testenv.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(pros.Log(), "policy-violation") && strings.Contains(pros.Log(), "microblog.test requires TLS")
	}, "Prosody's log does not show the refusal:\n%s", pros.Log())
	select {
	case got := <-gw.rec.received:
		t.Fatalf("the gateway handed over %+v from a plaintext peer", got)
	default:
	}
}

// TestRealServerRefusesWrongKey: a gateway whose key the domain's
// authoritative server disowns is refused by a real server. The remote
// server checks our key with whatever server DNS names for our domain;
// here that is a second gateway for microblog.test with another secret, as
// replicas configured with different secrets would be.
func TestRealServerRefusesWrongKey(t *testing.T) {
	for _, c := range []struct {
		name  string
		start func(testing.TB, testenv.S2SPeer) testenv.S2SServer
	}{
		{"prosody", func(t testing.TB, p testenv.S2SPeer) testenv.S2SServer { return testenv.StartProsodyS2S(t, p) }},
		{"ejabberd", func(t testing.TB, p testenv.S2SPeer) testenv.S2SServer { return testenv.StartEjabberdS2S(t, p) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dns := testenv.StartDNS(t)
			authoritative := testenv.FreePort(t) // what DNS names for microblog.test
			server := c.start(t, testenv.S2SPeer{Domain: "microblog.test", Port: authoritative, DNS: dns})
			hosts := map[string]string{server.Info().Host: server.S2SAddr()}
			startNode(t, s2s.Config{Domain: "microblog.test", Secret: "the real secret", Addr: testenv.Addr(authoritative), Insecure: true, Hosts: hosts})
			rogue := startNode(t, s2s.Config{Domain: "microblog.test", Secret: "another secret", Addr: testenv.Addr(testenv.FreePort(t)), Insecure: true, Hosts: hosts})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := rogue.srv.Stream(ctx, server.Info().Host)
			if !errors.Is(err, s2s.ErrUnreachable) || !strings.Contains(err.Error(), "refused our dialback key") {
				t.Fatalf("stream with a key the domain disowns: %v, want ErrUnreachable about the key\nserver log:\n%s", err, server.Log())
			}
			if n := rogue.value(t, "starling_s2s_dialback_failures_total", "out"); n != 1 {
				t.Fatalf("dialback failures out = %v", n)
			}
		})
	}
}
