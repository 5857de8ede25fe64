package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// tokenizer is what a session reads the stream with: the scanner, or
// encoding/xml (stdxml.go).
type tokenizer interface {
	next() (*token, error)
}

// newTokenizer reads r with the named parser; idle runs before each read
// from r, so that answers are flushed before the session waits for more.
func newTokenizer(parser string, r io.Reader, idle func()) tokenizer {
	if parser == "encoding/xml" {
		return newStdTokenizer(r, idle)
	}
	s := newScanner(r, 256<<10, 4<<20)
	s.idle = idle
	return s
}

// tally holds the counts every session adds to, and the watches on them.
type tally struct {
	mu      sync.Mutex
	keys    map[string]*keyCount
	byID    map[int64]*watch
	lastID  int64
	failed  chan struct{} // closed at the first fault in a stream
	failure error

	iqs, presences, answered, sessions, live, bytes atomic.Int64
}

// keyCount is the messages counted for one key (the recipients' domain).
type keyCount struct {
	n       atomic.Int64
	next    atomic.Int64 // smallest target watched; MaxInt64 when none
	watches []*watch     // under tally.mu
}

// watch is a wait for a key's count to reach target; at is when the message
// that reached it was parsed.
type watch struct {
	id     int64
	key    string
	kc     *keyCount
	target int64
	at     time.Time
	done   chan struct{}
}

func newTally() *tally {
	return &tally{keys: map[string]*keyCount{}, byID: map[int64]*watch{}, failed: make(chan struct{})}
}

func (t *tally) key(k string) *keyCount {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.keyLocked(k)
}

func (t *tally) keyLocked(k string) *keyCount {
	kc := t.keys[k]
	if kc == nil {
		kc = &keyCount{}
		kc.next.Store(math.MaxInt64)
		t.keys[k] = kc
	}
	return kc
}

// add counts one message for kc.
func (t *tally) add(kc *keyCount) {
	if n := kc.n.Add(1); n >= kc.next.Load() {
		t.fire(kc, n)
	}
}

func (t *tally) fire(kc *keyCount, n int64) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	next := int64(math.MaxInt64)
	kept := kc.watches[:0]
	for _, w := range kc.watches {
		if n >= w.target {
			w.at = now
			close(w.done)
			continue
		}
		kept = append(kept, w)
		next = min(next, w.target)
	}
	kc.watches = kept
	kc.next.Store(next)
}

// watch starts waiting for add more messages to key than counted so far.
func (t *tally) watch(key string, add int64) *watch {
	t.mu.Lock()
	kc := t.keyLocked(key)
	t.lastID++
	w := &watch{id: t.lastID, key: key, kc: kc, target: kc.n.Load() + add, done: make(chan struct{})}
	t.byID[w.id] = w
	kc.watches = append(kc.watches, w)
	if w.target < kc.next.Load() {
		kc.next.Store(w.target)
	}
	t.mu.Unlock()
	// A message counted between the load and the store above saw the old
	// target; look again.
	if n := kc.n.Load(); n >= w.target {
		t.fire(kc, n)
	}
	return w
}

// forget drops a watch that is done with.
func (t *tally) forget(w *watch) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.byID, w.id)
	for i, x := range w.kc.watches {
		if x == w {
			w.kc.watches = append(w.kc.watches[:i], w.kc.watches[i+1:]...)
			break
		}
	}
}

func (t *tally) lookup(id int64) *watch {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byID[id]
}

// fail records the first fault; every wait then fails at once.
func (t *tally) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failure == nil {
		t.failure = err
		close(t.failed)
	}
}

func (t *tally) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failure
}

// counts is every key's count.
func (t *tally) counts() map[string]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int64, len(t.keys))
	for k, kc := range t.keys {
		out[k] = kc.n.Load()
	}
	return out
}

const (
	nsStreams   = "http://etherx.jabber.org/streams"
	nsComponent = "jabber:component:accept"
)

// session is one component stream, from either end.
type session struct {
	t     *tally
	conn  io.ReadWriter
	w     *bufio.Writer
	tz    tokenizer
	cache map[string]*keyCount // this session's view of t.keys
	// The stanza being read.
	kind                 byte // 'm', 'i', 'p' or 0
	kc                   *keyCount
	iqType, iqID, iqFrom []byte
	iqTo                 []byte
	idQ, fromQ, toQ      byte
}

func newSession(t *tally, conn io.ReadWriter, parser string) *session {
	s := &session{t: t, conn: conn, w: bufio.NewWriterSize(conn, 32<<10), cache: map[string]*keyCount{}}
	s.tz = newTokenizer(parser, countReader{conn, &t.bytes}, func() { _ = s.w.Flush() })
	return s
}

// countReader adds what it reads to n.
type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// meaningful returns the next token that is not white space between
// elements or the XML declaration.
func (s *session) meaningful() (*token, error) {
	for {
		tok, err := s.tz.next()
		if err != nil {
			return nil, err
		}
		if tok.kind == kDecl || tok.kind == kText && len(bytes.TrimLeft(tok.text, " \t\r\n")) == 0 {
			continue
		}
		return tok, nil
	}
}

func attrOf(tok *token, name string) ([]byte, byte, bool) {
	for _, a := range tok.attrs {
		if string(a.name) == name {
			return a.value, a.quote, true
		}
	}
	return nil, 0, false
}

func isRoot(tok *token) bool {
	return tok.kind == kStart && tok.depth == 1 && (string(tok.name) == "stream:stream")
}

// connect logs in to an XMPP server's component port as domain (XEP-0114).
func (s *session) connect(domain, secret string) error {
	fmt.Fprintf(s.w, `<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' to='%s'>`, nsComponent, nsStreams, domain)
	if err := s.w.Flush(); err != nil {
		return err
	}
	tok, err := s.meaningful()
	if err != nil {
		return fmt.Errorf("stream header: %w", err)
	}
	if !isRoot(tok) {
		return fmt.Errorf("stream header: got <%s>", tok.name)
	}
	id, _, ok := attrOf(tok, "id")
	if !ok {
		return errors.New("stream header without an id")
	}
	sum := sha1.Sum(append(decode(id), secret...))
	fmt.Fprintf(s.w, "<handshake>%x</handshake>", sum)
	if err := s.w.Flush(); err != nil {
		return err
	}
	tok, err = s.meaningful()
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if tok.kind != kStart || string(tok.name) != "handshake" {
		return fmt.Errorf("handshake refused: <%s>", tok.name)
	}
	if !tok.empty {
		if tok, err = s.meaningful(); err != nil || tok.kind != kEnd {
			return fmt.Errorf("handshake answer: %v", err)
		}
	}
	return nil
}

// accept answers a component's login as the server of domain.
func (s *session) accept(domain, secret string) error {
	tok, err := s.meaningful()
	if err != nil {
		return fmt.Errorf("stream header: %w", err)
	}
	if !isRoot(tok) {
		return fmt.Errorf("stream header: got <%s>", tok.name)
	}
	if to, _, _ := attrOf(tok, "to"); string(decode(to)) != domain {
		fmt.Fprintf(s.w, `<?xml version='1.0'?><stream:stream xmlns:stream='%s' xmlns='%s'><stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`, nsStreams, nsComponent)
		_ = s.w.Flush()
		return fmt.Errorf("stream to %q, not %q", to, domain)
	}
	id := rand.Text()
	fmt.Fprintf(s.w, `<?xml version='1.0'?><stream:stream xmlns:stream='%s' xmlns='%s' from='%s' id='%s'>`, nsStreams, nsComponent, domain, id)
	if err := s.w.Flush(); err != nil {
		return err
	}
	tok, err = s.meaningful()
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if tok.kind != kStart || tok.depth != 2 || string(tok.name) != "handshake" || tok.empty {
		return fmt.Errorf("handshake: got <%s>", tok.name)
	}
	var got []byte
	for {
		if tok, err = s.tz.next(); err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
		if tok.kind == kEnd {
			break
		}
		if tok.kind != kText {
			return fmt.Errorf("handshake: <%s> inside", tok.name)
		}
		got = append(got, decode(tok.text)...)
	}
	sum := sha1.Sum([]byte(id + secret))
	if !strings.EqualFold(strings.TrimSpace(string(got)), hex.EncodeToString(sum[:])) {
		fmt.Fprint(s.w, `<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`)
		_ = s.w.Flush()
		return errors.New("handshake: wrong secret")
	}
	if _, err := io.WriteString(s.w, "<handshake/>"); err != nil {
		return err
	}
	return s.w.Flush()
}

// serve reads stanzas until the stream ends: it counts messages by the
// domain they are addressed to and answers every IQ get or set with a
// result. The end of the stream (</stream:stream>) returns nil.
func (s *session) serve() error {
	for {
		tok, err := s.tz.next()
		if err != nil {
			return err
		}
		switch tok.kind {
		case kStart:
			if tok.depth == 2 {
				s.begin(tok)
				if tok.empty {
					s.finish()
				}
			}
		case kEnd:
			switch tok.depth {
			case 2:
				s.finish()
			case 1:
				_, _ = io.WriteString(s.w, "</stream:stream>")
				_ = s.w.Flush()
				return nil
			}
		}
	}
}

// begin notes what a stanza's start tag says.
func (s *session) begin(tok *token) {
	s.kind = 0
	switch string(tok.name) {
	case "message":
		s.kind = 'm'
		to, _, _ := attrOf(tok, "to")
		s.kc = s.keyOf(domainOf(decode(to)))
	case "iq":
		s.kind = 'i'
		typ, _, _ := attrOf(tok, "type")
		id, idQ, _ := attrOf(tok, "id")
		from, fromQ, _ := attrOf(tok, "from")
		to, toQ, _ := attrOf(tok, "to")
		s.iqType = append(s.iqType[:0], typ...)
		s.iqID = append(s.iqID[:0], id...)
		s.iqFrom = append(s.iqFrom[:0], from...)
		s.iqTo = append(s.iqTo[:0], to...)
		s.idQ, s.fromQ, s.toQ = idQ, fromQ, toQ
	case "presence":
		s.kind = 'p'
	}
}

// finish counts the stanza just read and answers an IQ request.
func (s *session) finish() {
	switch s.kind {
	case 'm':
		s.t.add(s.kc)
	case 'i':
		s.t.iqs.Add(1)
		if t := string(s.iqType); (t == "get" || t == "set") && s.idQ != 0 {
			// The values go back as they came, in the quotes they came in.
			s.w.WriteString(`<iq type='result' id=`)
			quoted(s.w, s.iqID, s.idQ)
			if s.toQ != 0 {
				s.w.WriteString(` from=`)
				quoted(s.w, s.iqTo, s.toQ)
			}
			if s.fromQ != 0 {
				s.w.WriteString(` to=`)
				quoted(s.w, s.iqFrom, s.fromQ)
			}
			s.w.WriteString(`/>`)
			s.t.answered.Add(1)
		}
	case 'p':
		s.t.presences.Add(1)
	}
	s.kind = 0
}

func quoted(w *bufio.Writer, v []byte, q byte) {
	w.WriteByte(q)
	w.Write(v)
	w.WriteByte(q)
}

// keyOf is the count for a domain, from this session's cache when it can.
func (s *session) keyOf(domain []byte) *keyCount {
	if kc, ok := s.cache[string(domain)]; ok {
		return kc
	}
	kc := s.t.key(string(domain))
	s.cache[string(domain)] = kc
	return kc
}

// domainOf is the domain part of a JID.
func domainOf(jid []byte) []byte {
	if i := bytes.IndexByte(jid, '/'); i >= 0 {
		jid = jid[:i]
	}
	if i := bytes.IndexByte(jid, '@'); i >= 0 {
		jid = jid[i+1:]
	}
	return jid
}

// run handles one connection from login to end, recording a fault.
func (t *tally) run(ctx context.Context, conn net.Conn, parser string, login func(*session) error, closedIsFault bool) error {
	s := newSession(t, conn, parser)
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	defer conn.Close()
	if err := login(s); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	t.sessions.Add(1)
	t.live.Add(1)
	defer t.live.Add(-1)
	err := s.serve()
	var se *syntaxError
	switch {
	case errors.As(err, &se):
		t.fail(fmt.Errorf("malformed stream: %w", err))
	case ctx.Err() != nil:
		return nil
	case err != nil && closedIsFault:
		t.fail(fmt.Errorf("stream to the server ended: %w", err))
	case err == nil && closedIsFault:
		t.fail(errors.New("the server closed the stream"))
	}
	return err
}
