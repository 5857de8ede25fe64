package e2e

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"starling.dev/starling/internal/testenv"
)

// TestS2STranscript records, from the client's side, what a Jabber user of
// a Prosody server exchanges with a gateway in s2s mode while following an
// author by IM, receiving a post and unfollowing: every byte of the c2s
// stream from its start, in both directions. STARLING_S2S_TRANSCRIPT names
// a file to write it to.
func TestS2STranscript(t *testing.T) {
	s, server := startS2SStack(t, s2sServers[0].start, testenv.S2SPeer{})
	alice := s.createUser(t, "alice")
	server.Register(t, "bob", "bob-pw")
	tr := &transcript{start: time.Now()}
	c := dialTeed(t, server.Info().C2SAddr, "bob@localhost/laptop", "bob-pw", tr)

	tr.note("bob sends initial presence, then asks the service for help")
	c.send(t, `<presence/>`)
	c.chat(t, s2sDomain, "help")
	c.await(t, "<body>Starling on "+s2sDomain)
	tr.note("bob follows alice by IM")
	c.chat(t, s2sDomain, "follow alice")
	c.await(t, "You now follow Alice")
	c.await(t, "subscribe")
	tr.note("alice posts through the API: POST /v1/statuses {\"text\":\"Hello from microblog.test over s2s!\"}")
	st := s.post(t, alice, "Hello from microblog.test over s2s!")
	c.await(t, st.ID)
	tr.note("bob asks alice's JID for her last post, then unfollows")
	c.chat(t, s.authorJID("alice"), "last")
	c.await(t, "Alice (alice), ")
	c.chat(t, s2sDomain, "unfollow alice")
	c.await(t, "You no longer follow alice.")
	if path := os.Getenv("STARLING_S2S_TRANSCRIPT"); path != "" {
		if err := os.WriteFile(path, []byte(tr.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("transcript written to %s", path)
	}
}

// transcript collects both directions of a stream, with times.
type transcript struct {
	start time.Time
	mu    sync.Mutex
	b     strings.Builder
	in    strings.Builder // what the server sent, for await
	cond  *sync.Cond
}

func (tr *transcript) write(dir string, p []byte) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	fmt.Fprintf(&tr.b, "%7.1f ms %s %s\n", float64(time.Since(tr.start).Microseconds())/1000, dir, p)
	if dir == "S:" {
		tr.in.Write(p)
		if tr.cond != nil {
			tr.cond.Broadcast()
		}
	}
}

func (tr *transcript) note(s string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	fmt.Fprintf(&tr.b, "\n%7.1f ms # %s\n", float64(time.Since(tr.start).Microseconds())/1000, s)
}

func (tr *transcript) String() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.b.String()
}

type dirWriter struct {
	tr  *transcript
	dir string
}

func (w dirWriter) Write(p []byte) (int, error) {
	w.tr.write(w.dir, p)
	return len(p), nil
}

// teedClient is a c2s session whose bytes go to a transcript.
type teedClient struct {
	sess *xmpp.Session
	tr   *transcript
	seen int // bytes of the server's output await has gone past
}

// dialTeed logs in over c2s (SASL PLAIN on loopback) with every byte after
// the stream's start recorded in tr.
func dialTeed(t *testing.T, addr, full, password string, tr *transcript) *teedClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	origin := jid.MustParse(full)
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := xmpp.NewSession(ctx, origin.Domain(), origin, conn, xmpp.Secure,
		xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
			return xmpp.StreamConfig{
				Features: []xmpp.StreamFeature{xmpp.SASL("", password, sasl.Plain), xmpp.BindResource()},
				TeeIn:    dirWriter{tr, "S:"}, TeeOut: dirWriter{tr, "C:"},
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sess.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			_, err := xmlstream.Copy(xmlstream.Discard(), r)
			return err
		}))
	}()
	t.Cleanup(func() {
		_ = sess.Close()
		_ = conn.Close()
		<-done
	})
	tr.mu.Lock()
	tr.cond = sync.NewCond(&tr.mu)
	tr.mu.Unlock()
	return &teedClient{sess: sess, tr: tr}
}

func (c *teedClient) send(t *testing.T, raw string) {
	t.Helper()
	if err := c.sess.Send(context.Background(), xml.NewDecoder(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
}

func (c *teedClient) chat(t *testing.T, to, body string) {
	t.Helper()
	msg := stanza.Message{To: jid.MustParse(to), Type: stanza.ChatMessage}
	b := xmlstream.Wrap(xmlstream.Token(xml.CharData(body)), xml.StartElement{Name: xml.Name{Local: "body"}})
	if err := c.sess.Send(context.Background(), msg.Wrap(b)); err != nil {
		t.Fatal(err)
	}
}

// await waits until the server has written want, after what earlier
// awaits found.
func (c *teedClient) await(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	c.tr.mu.Lock()
	defer c.tr.mu.Unlock()
	for {
		if i := strings.Index(c.tr.in.String()[c.seen:], want); i >= 0 {
			c.seen += i + len(want)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q did not arrive; transcript so far:\n%s", want, c.tr.b.String())
		}
		timer := time.AfterFunc(100*time.Millisecond, func() {
			c.tr.mu.Lock()
			c.tr.cond.Broadcast()
			c.tr.mu.Unlock()
		})
		c.tr.cond.Wait()
		timer.Stop()
	}
}

var _ io.Writer = dirWriter{}
