package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"starling.dev/starling/internal/testenv"
)

// startReceiver runs the receiver in this test's process with cfg (its
// addresses on port 0) and returns its HTTP base URL and listen address.
func startReceiver(t *testing.T, cfg config) (string, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan [2]string, 1)
	cfg.http = "127.0.0.1:0"
	cfg.ready = func(h, l string) { addrs <- [2]string{h, l} }
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("receiver: %v", err)
		}
	})
	select {
	case a := <-addrs:
		return "http://" + a[0], a[1]
	case err := <-done:
		t.Fatalf("receiver: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("receiver did not start")
	}
	return "", ""
}

func getJSON(t *testing.T, method, url string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp.StatusCode
}

// dialComponent logs in to addr as domain with mellium's handshake, an
// implementation other than the receiver's.
func dialComponent(t *testing.T, addr, domain, secret string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel) // not before: see testenv.DialComponent
	conn, err := testenv.DialComponent(ctx, addr, domain, secret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestEndpointCountsAndAnswers: the endpoint accepts a component login,
// counts messages by the recipients' domain, tells when a watched count is
// reached, and answers a ping with a result from whom it was sent to, with
// either parser.
func TestEndpointCountsAndAnswers(t *testing.T) {
	for _, parser := range []string{"scan", "encoding/xml"} {
		t.Run(strings.ReplaceAll(parser, "/", "-"), func(t *testing.T) {
			base, addr := startReceiver(t, config{listen: "127.0.0.1:0", domain: "microblog.localhost", secret: "s3cret", parser: parser})
			conn := dialComponent(t, addr, "microblog.localhost", "s3cret")
			var w struct{ ID, Target int64 }
			getJSON(t, "POST", base+"/watch?key=sink.localhost&add=1000", &w)
			if w.Target != 1000 {
				t.Fatalf("target %d, want 1000", w.Target)
			}
			bw := bufio.NewWriter(conn)
			for i := range 1000 {
				fmt.Fprintf(bw, `<message type="chat" from="a@microblog.localhost" to="f%d@sink.localhost/r" id="m"><body>post &amp; more</body></message>`, i)
				if i%100 == 0 {
					fmt.Fprintf(bw, `<message to='l%d@lat.localhost'/>`, i)
				}
			}
			fmt.Fprint(bw, `<iq type="get" from="microblog.localhost" to="localhost" id="ping&apos;1"><ping xmlns="urn:xmpp:ping"/></iq><presence/>`)
			if err := bw.Flush(); err != nil {
				t.Fatal(err)
			}
			var at struct{ At, Count int64 }
			if code := getJSON(t, "GET", fmt.Sprintf("%s/wait?id=%d&timeout=10s", base, w.ID), &at); code != 200 || at.At == 0 || at.Count != 1000 {
				t.Fatalf("wait: %d %+v", code, at)
			}
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := bufio.NewReader(conn).ReadString('>')
			if err != nil {
				t.Fatal(err)
			}
			// encoding/xml escapes the apostrophe its own way.
			got = strings.ReplaceAll(got, "&#39;", "&apos;")
			if want := `<iq type='result' id="ping&apos;1" from="localhost" to="microblog.localhost"/>`; got != want {
				t.Fatalf("answer %s, want %s", got, want)
			}
			var st statsBody
			testenv.Eventually(t, 10*time.Second, func() bool {
				getJSON(t, "GET", base+"/stats", &st)
				return st.Presences == 1
			}, "presence not counted")
			if st.Messages["sink.localhost"] != 1000 || st.Messages["lat.localhost"] != 10 || st.IQs != 1 || st.Answered != 1 || st.Error != "" {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestEndpointFailsOnMalformed: one ill-formed stanza fails every wait at
// once and is reported, however the rest of the bytes count.
func TestEndpointFailsOnMalformed(t *testing.T) {
	for _, parser := range []string{"scan", "encoding/xml"} {
		t.Run(strings.ReplaceAll(parser, "/", "-"), func(t *testing.T) {
			base, addr := startReceiver(t, config{listen: "127.0.0.1:0", domain: "microblog.localhost", secret: "s3cret", parser: parser})
			conn := dialComponent(t, addr, "microblog.localhost", "s3cret")
			var w struct{ ID int64 }
			getJSON(t, "POST", base+"/watch?key=sink.localhost&add=2", &w)
			if _, err := io.WriteString(conn, `<message to="f1@sink.localhost"><body>a &nbsp; b</body></message><message to="f2@sink.localhost"/>`); err != nil {
				t.Fatal(err)
			}
			var res struct{ Error string }
			if code := getJSON(t, "GET", fmt.Sprintf("%s/wait?id=%d&timeout=10s", base, w.ID), &res); code != 500 || !strings.Contains(res.Error, "malformed") {
				t.Fatalf("wait: %d %+v, want 500 malformed", code, res)
			}
			var st statsBody
			getJSON(t, "GET", base+"/stats", &st)
			if st.Error == "" || st.Messages["sink.localhost"] != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestEndpointRefusesWrongSecret: a component with the wrong secret is not
// let in.
func TestEndpointRefusesWrongSecret(t *testing.T) {
	_, addr := startReceiver(t, config{listen: "127.0.0.1:0", domain: "microblog.localhost", secret: "s3cret", parser: "scan"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if conn, err := testenv.DialComponent(ctx, addr, "microblog.localhost", "wrong"); err == nil {
		conn.Close()
		t.Fatal("handshake with the wrong secret succeeded")
	}
}

// TestComponentThroughProsody: the receiver logs in to Prosody as
// sink.localhost and counts what a component on microblog.localhost sends
// to its users; Prosody's answer to the sender's ping shows it routed them.
func TestComponentThroughProsody(t *testing.T) {
	pros := testenv.StartProsody(t, testenv.WithComponents("sink.localhost"))
	info := pros.Info()
	base, _ := startReceiver(t, config{connect: info.ComponentAddr, domain: "sink.localhost", secret: info.Secret, parser: "scan"})
	var st statsBody
	testenv.Eventually(t, 10*time.Second, func() bool {
		getJSON(t, "GET", base+"/stats", &st)
		return st.Live == 1 || st.Error != ""
	}, "receiver not logged in")
	if st.Error != "" {
		t.Fatal(st.Error)
	}
	var w struct{ ID int64 }
	getJSON(t, "POST", base+"/watch?key=sink.localhost&add=500", &w)
	conn := dialComponent(t, info.ComponentAddr, info.ComponentDomain, info.Secret)
	bw := bufio.NewWriter(conn)
	for i := range 500 {
		fmt.Fprintf(bw, `<message type="chat" from="a@%s" to="f%d@sink.localhost" id="m%d"><body>hello</body></message>`, info.ComponentDomain, i, i)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	var at struct{ At, Count int64 }
	if code := getJSON(t, "GET", fmt.Sprintf("%s/wait?id=%d&timeout=20s", base, w.ID), &at); code != 200 || at.Count != 500 {
		t.Fatalf("wait: %d %+v\n%s", code, at, pros.Log())
	}
}
