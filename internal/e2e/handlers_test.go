package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"starling.dev/starling/internal/testenv"
)

// TestRedisPauseDuringFanout pauses Redis (CLIENT PAUSE, every client) for
// four seconds while a post goes out to a few thousand followers and a
// follower sends commands. The handlers do their store calls off the
// stream's reader, so the answers to delivery pings keep coming: no batch
// times out and none is sent twice; the commands are answered, each once
// and in order, when Redis is back.
func TestRedisPauseDuringFanout(t *testing.T) {
	const followers = 5_000
	const pause = 4 * time.Second
	srv := testenv.StartProsody(t, testenv.WithComponents(sinkDomain))
	s := startStack(t, srv)
	sink := testenv.StartSink(t, srv.ComponentAddrOf(sinkDomain), srv.Secret, sinkDomain)
	star := s.createUser(t, "star")
	bob := s.client(t, "bob")
	service := s.srv.ComponentDomain
	for i := range followers { // through the store: whatever its key layout
		if _, err := s.store.Follow(context.Background(), "star", fmt.Sprintf("f%d@%s", i, sinkDomain)); err != nil {
			t.Fatal(err)
		}
	}
	rdb := s.redis.Client(t)

	s.post(t, star, "to the multitudes, through a paused Redis")
	testenv.Eventually(t, 30*time.Second, func() bool { return sink.Count() > 0 }, "the fanout did not start")
	if err := rdb.Do(context.Background(), "CLIENT", "PAUSE", pause.Milliseconds(), "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	atPause := sink.Count()
	commands := []struct{ body, want string }{
		{"whois star", "Star (star@" + service + ")"},
		{"last star", "Star (star), "},
		{"following", "You follow nobody yet"},
		{"help", "Starling on " + service},
		{"whois star", "Star (star@" + service + ")"},
	}
	for _, c := range commands {
		bob.Send(t, service, c.body)
	}
	for i, c := range commands {
		r := bob.Next(t, pause+15*time.Second)
		t.Logf("%s into the pause, %q: %q", time.Since(paused).Round(time.Millisecond), c.body, firstLine(r.Body))
		// A store call that met the pause from its start may time out
		// (go-redis reads for 3 s): the one reply is then an apology.
		if !strings.Contains(r.Body, c.want) && !(i < 2 && strings.HasPrefix(r.Body, "Sorry, something went wrong")) {
			t.Errorf("command %d %q: reply %q, want %q", i, c.body, r.Body, c.want)
		}
		if i == len(commands)-1 && time.Since(paused) < pause-500*time.Millisecond {
			t.Errorf("the last command was answered %s into a %s pause of the store", time.Since(paused), pause)
		}
	}
	roundTrip(t, s, bob)
	if extra := bob.Pending(); len(extra) != 0 {
		t.Fatalf("extra replies: %+v", extra)
	}
	s.drained(t)
	// A batch is acknowledged once Prosody has routed it, which is before
	// the sink has read it all: wait for the sink to catch up (a lost
	// message fails here), then count once more for duplicates.
	testenv.Eventually(t, 10*time.Second, func() bool { return sink.Count() >= followers },
		"the sink did not reach %d messages", followers)
	total := sink.Count()
	t.Logf("%d of %d delivered when Redis was paused; %d messages in all", atPause, followers, total)
	if atPause >= followers {
		t.Fatal("the fanout was over before the pause; the test shows nothing")
	}
	if total != followers {
		t.Fatalf("the sink counted %d messages for %d followers: %d lost or %d duplicates", total, followers, max(0, followers-total), max(0, total-followers))
	}
	if n := s.metric(t, "starling_xmpp_handler_busy_total"); n != "0" {
		t.Errorf("%s stanzas refused as busy", n)
	}
}

// unusualLocalparts are valid localparts (nodeprep, as XMPP servers apply
// it) that the JID library partly rejects (PRECIS): ☃ and ♥ are symbols.
var unusualLocalparts = []string{"☃", "♥love", "josé", "o'brien", "a+b", "Ω", "дима", "x.y-z_1"}

// TestUnusualLocalparts registers followers with unusual localparts, as many
// as each server accepts, and shows each is served: IM commands, following,
// delivery, roster subscription and IQs (each answered exactly once,
// unknown ones with an error).
func TestUnusualLocalparts(t *testing.T) {
	eachServer(t, func(t *testing.T, s *stack) {
		alice := s.createUser(t, "alice")
		s.createUser(t, "carol")
		service := s.srv.ComponentDomain
		var accepted, refused []string
		for _, user := range unusualLocalparts {
			if err := tryRegister(t, s.xmpp, user, "pw-"+user); err != nil {
				refused = append(refused, fmt.Sprintf("%s (%v)", user, firstLine(err.Error())))
				continue
			}
			accepted = append(accepted, user)
		}
		t.Logf("%s registered %q; refused %q", s.srv.Name, accepted, refused)
		var rejectedByJID []string
		clients := make([]*rawClient, 0, len(accepted))
		for _, user := range accepted {
			c := dialRaw(t, s.srv.C2SAddr, s.srv.Host, user, "pw-"+user)
			if _, err := jid.Parse(c.jid); err != nil {
				rejectedByJID = append(rejectedByJID, c.jid)
			}
			clients = append(clients, c)
		}
		t.Logf("bound JIDs the JID library rejects: %q", rejectedByJID)
		if len(rejectedByJID) == 0 {
			t.Fatalf("%s accepted no localpart the JID library rejects; the test shows nothing", s.srv.Name)
		}
		for _, c := range clients {
			if r := c.ask(t, service, "help"); !strings.HasPrefix(r, "Starling on") {
				t.Errorf("%s: help: %q", c.jid, r)
			}
			if r := c.ask(t, service, "follow alice"); !strings.Contains(r, "You now follow Alice (alice)") {
				t.Errorf("%s: follow alice: %q", c.jid, r)
			}
			if r := c.iq(t, service, `<query xmlns="http://jabber.org/protocol/disco#info"/>`); !strings.Contains(r, `type="result"`) || !strings.Contains(r, `category="component"`) {
				t.Errorf("%s: service disco#info: %s", c.jid, r)
			}
			if r := c.iq(t, s.authorJID("alice"), `<query xmlns="http://jabber.org/protocol/disco#info"/>`); !strings.Contains(r, `type="result"`) || !strings.Contains(r, `name="Alice"`) {
				t.Errorf("%s: alice's disco#info: %s", c.jid, r)
			}
			if r := c.iq(t, service, `<query xmlns="jabber:iq:last"/>`); !strings.Contains(r, `type="error"`) || !strings.Contains(r, "feature-not-implemented") {
				t.Errorf("%s: unknown IQ: %s", c.jid, r)
			}
			c.send(t, fmt.Sprintf(`<presence type="subscribe" to="%s"/>`, esc(s.authorJID("carol"))))
			if p := c.nextPresence(t, s.authorJID("carol")); p.Type != "" {
				t.Errorf("%s: roster subscription to carol answered with presence %q", c.jid, p.Type)
			}
		}
		testenv.Eventually(t, 10*time.Second, func() bool { return s.profile(t, "carol").Followers == int64(len(clients)) },
			"carol has %d followers by roster, want %d", s.profile(t, "carol").Followers, len(clients))
		if f := s.profile(t, "alice").Followers; f != int64(len(clients)) {
			t.Fatalf("alice has %d followers, want %d", f, len(clients))
		}
		st := s.post(t, alice, "to every address the server accepts")
		for _, c := range clients {
			m := c.nextFrom(t, s.authorJID("alice"))
			if m.Body == nil || *m.Body != st.Text {
				t.Errorf("%s: delivery %+v", c.jid, m)
			}
		}
		for _, c := range clients {
			c.iq(t, service, `<ping xmlns="urn:xmpp:ping"/>`) // a last round trip
			c.checkOneAnswerEach(t)
		}
	})
}

// tryRegister registers user, returning the server's refusal as an error
// instead of failing the test.
func tryRegister(t *testing.T, server testenv.XMPPServer, user, password string) error {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		server.Register(r, user, password)
	}()
	<-done
	return r.err
}

// recorder is a testenv.TB whose failures are returned, not reported: Fatal
// ends only the goroutine that called it.
type recorder struct {
	testenv.TB
	err error
}

func (r *recorder) Errorf(format string, args ...any) { r.err = fmt.Errorf(format, args...) }
func (r *recorder) Fatal(args ...any) {
	r.err = fmt.Errorf("%s", fmt.Sprint(args...))
	runtime.Goexit()
}
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...); runtime.Goexit() }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// rawClient is a c2s client written with encoding/xml alone: SASL PLAIN,
// resource binding and stanzas as text. The JID library refuses to log in
// users such as ☃@localhost (its bind step parses the JID the server
// returns), so this client stands in for those users' Jabber clients.
type rawClient struct {
	jid  string // the full JID the server bound
	conn net.Conn
	wmu  sync.Mutex

	msgs chan rawStanza
	pres chan rawStanza
	mu   sync.Mutex
	ids  int
	// waiting holds the IQs sent and not yet answered; answers counts
	// the answers to each id.
	waiting map[string]chan rawStanza
	answers map[string]int
	done    chan struct{}
}

// rawStanza is what the raw client reads of a stanza.
type rawStanza struct {
	XMLName xml.Name
	From    string  `xml:"from,attr"`
	Type    string  `xml:"type,attr"`
	ID      string  `xml:"id,attr"`
	Body    *string `xml:"body"`
	Inner   string  `xml:",innerxml"`
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// dialRaw logs user@host in at addr and sends initial presence; it logs
// out when the test ends.
func dialRaw(t testing.TB, addr, host, user, password string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &rawClient{conn: conn, msgs: make(chan rawStanza, 64), pres: make(chan rawStanza, 64),
		waiting: map[string]chan rawStanza{}, answers: map[string]int{}, done: make(chan struct{})}
	br := bufio.NewReader(conn)
	open := func() *xml.Decoder {
		c.send(t, `<?xml version="1.0"?><stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams" version="1.0" to="`+esc(host)+`">`)
		d := xml.NewDecoder(br) // br is a ByteReader: d reads no further than it must
		if start := nextElement(t, d); start.Name.Local != "stream" {
			t.Fatalf("raw client: no stream header: %v", start.Name)
		}
		if start := nextElement(t, d); start.Name.Local != "features" {
			t.Fatalf("raw client: no features: %v", start.Name)
		} else if err := d.Skip(); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := open()
	creds := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	c.send(t, `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">`+creds+`</auth>`)
	if start := nextElement(t, d); start.Name.Local != "success" {
		t.Fatalf("raw client: %s not logged in: %v", user, start.Name)
	} else if err := d.Skip(); err != nil {
		t.Fatal(err)
	}
	d = open()
	c.send(t, `<iq type="set" id="bind"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>raw</resource></bind></iq>`)
	var bound struct {
		Type string `xml:"type,attr"`
		JID  string `xml:"bind>jid"`
	}
	start := nextElement(t, d)
	if err := d.DecodeElement(&bound, &start); err != nil || bound.Type != "result" || bound.JID == "" {
		t.Fatalf("raw client: bind %s: %+v %v", user, bound, err)
	}
	c.jid = bound.JID
	_ = conn.SetDeadline(time.Time{})
	go c.read(d)
	t.Cleanup(func() {
		c.send(t, `</stream:stream>`)
		_ = conn.Close()
		<-c.done
	})
	c.send(t, `<presence/>`)
	return c
}

func nextElement(t testing.TB, d *xml.Decoder) xml.StartElement {
	t.Helper()
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("raw client: %v", err)
		}
		if s, ok := tok.(xml.StartElement); ok {
			return s
		}
	}
}

// read dispatches stanzas until the stream ends.
func (c *rawClient) read(d *xml.Decoder) {
	defer close(c.done)
	for {
		tok, err := d.Token()
		if err != nil {
			return
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		var s rawStanza
		if err := d.DecodeElement(&s, &start); err != nil {
			return
		}
		switch s.XMLName.Local {
		case "message":
			select {
			case c.msgs <- s:
			default:
			}
		case "presence":
			select {
			case c.pres <- s:
			default:
			}
		case "iq":
			c.iqIn(s)
		}
	}
}

// iqIn hands an answer to the IQ waiting for it, and answers the server's
// own requests (roster pushes, pings) with an empty result.
func (c *rawClient) iqIn(s rawStanza) {
	if s.Type == "get" || s.Type == "set" {
		to := ""
		if s.From != "" {
			to = ` to="` + esc(s.From) + `"`
		}
		_ = c.write(`<iq type="result" id="` + esc(s.ID) + `"` + to + `/>`)
		return
	}
	c.mu.Lock()
	c.answers[s.ID]++
	w := c.waiting[s.ID]
	delete(c.waiting, s.ID)
	c.mu.Unlock()
	if w != nil {
		w <- s
	}
}

func (c *rawClient) write(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.conn.Write([]byte(s))
	return err
}

func (c *rawClient) send(t testing.TB, s string) {
	t.Helper()
	if err := c.write(s); err != nil {
		t.Fatalf("raw client %s: %v", c.jid, err)
	}
}

// ask sends body to the JID and returns the body of the next message from
// it.
func (c *rawClient) ask(t testing.TB, to, body string) string {
	t.Helper()
	c.send(t, `<message type="chat" to="`+esc(to)+`"><body>`+esc(body)+`</body></message>`)
	m := c.nextFrom(t, to)
	if m.Body == nil {
		return ""
	}
	return *m.Body
}

// nextFrom returns the next message with a body from the bare JID.
func (c *rawClient) nextFrom(t testing.TB, from string) rawStanza {
	t.Helper()
	timer := time.NewTimer(15 * time.Second)
	defer timer.Stop()
	for {
		select {
		case m := <-c.msgs:
			if m.Body != nil && bare(m.From) == from {
				return m
			}
		case <-timer.C:
			t.Fatalf("raw client %s: no message from %s", c.jid, from)
		}
	}
}

// nextPresence returns the next presence from the bare JID, other than a
// subscription request or approval (ejabberd passes approvals on, Prosody
// turns them into roster pushes).
func (c *rawClient) nextPresence(t testing.TB, from string) rawStanza {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		select {
		case p := <-c.pres:
			if bare(p.From) == from && p.Type != "subscribe" && p.Type != "subscribed" {
				return p
			}
		case <-timer.C:
			t.Fatalf("raw client %s: no presence from %s", c.jid, from)
		}
	}
}

// iq sends a get with the raw payload to the JID and returns its answer as
// text: `type="…"` and the payload.
func (c *rawClient) iq(t testing.TB, to, payload string) string {
	t.Helper()
	answer := make(chan rawStanza, 1)
	c.mu.Lock()
	c.ids++
	id := fmt.Sprintf("q%d", c.ids)
	c.waiting[id] = answer
	c.mu.Unlock()
	c.send(t, `<iq type="get" id="`+id+`" to="`+esc(to)+`">`+payload+`</iq>`)
	select {
	case a := <-answer:
		return fmt.Sprintf(`type=%q %s`, a.Type, strings.ReplaceAll(a.Inner, "'", `"`)) // attributes as the checks quote them
	case <-time.After(10 * time.Second):
		t.Fatalf("raw client %s: IQ %s to %s unanswered", c.jid, payload, to)
		return ""
	}
}

// checkOneAnswerEach fails the test unless every IQ sent got exactly one
// answer.
func (c *rawClient) checkOneAnswerEach(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 1; i <= c.ids; i++ {
		if n := c.answers[fmt.Sprintf("q%d", i)]; n != 1 {
			t.Errorf("raw client %s: IQ q%d answered %d times", c.jid, i, n)
		}
	}
}
