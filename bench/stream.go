package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
)

// scanner counts byte patterns in a stream of XML without parsing it, and
// hands each <iq ...> start tag to a callback. It is the receiving end of
// every benchmark: bytes.Count over large reads costs a few ns per stanza,
// so the receiver is never what a figure measures (see the receiver
// self-check).
type scanner struct {
	pats   [][]byte
	counts []atomic.Int64
	maxPat int
	onIQ   atomic.Pointer[func(tag []byte)]

	mu      sync.Mutex
	watches []*watch
	nwatch  atomic.Int32
	bytes   atomic.Int64
}

// watch fires when pattern idx has been counted target times.
type watch struct {
	idx    int
	target int64
	at     time.Time
	done   chan struct{}
}

var iqOpen = []byte("<iq")

func newScanner(patterns ...string) *scanner {
	s := &scanner{counts: make([]atomic.Int64, len(patterns)), maxPat: len(iqOpen)}
	for _, p := range patterns {
		s.pats = append(s.pats, []byte(p))
		s.maxPat = max(s.maxPat, len(p))
	}
	return s
}

// feed scans data and returns how many bytes it consumed; the rest (a
// pattern or an <iq> tag cut by the read) must be fed again with more.
func (s *scanner) feed(data []byte) int {
	cut := max(len(data)-(s.maxPat-1), 0)
	if f := s.onIQ.Load(); f != nil {
		off := 0
		for {
			i := bytes.Index(data[off:], iqOpen)
			if i < 0 {
				break
			}
			i += off
			if i >= cut {
				break
			}
			j := bytes.IndexByte(data[i:], '>')
			if j < 0 {
				cut = i
				break
			}
			(*f)(data[i : i+j+1])
			off = i + j + 1
		}
	}
	for k, p := range s.pats {
		// A match starting before cut lies wholly within data[:cut+len(p)-1].
		if n := bytes.Count(data[:min(len(data), cut+len(p)-1)], p); n > 0 {
			s.counts[k].Add(int64(n))
		}
	}
	s.bytes.Add(int64(cut))
	if s.nwatch.Load() > 0 {
		s.fire()
	}
	return cut
}

func (s *scanner) fire() {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.watches[:0]
	for _, w := range s.watches {
		if s.counts[w.idx].Load() >= w.target {
			w.at = now
			close(w.done)
			continue
		}
		kept = append(kept, w)
	}
	s.watches = kept
	s.nwatch.Store(int32(len(kept)))
}

// count returns how many times pattern idx was seen.
func (s *scanner) count(idx int) int64 { return s.counts[idx].Load() }

// await returns the time at which pattern idx had been counted target times
// (the end of the read that carried the last one), or an error at the
// deadline.
func (s *scanner) await(idx int, target int64, within time.Duration) (time.Time, error) {
	w := &watch{idx: idx, target: target, done: make(chan struct{})}
	s.mu.Lock()
	s.watches = append(s.watches, w)
	s.nwatch.Store(int32(len(s.watches)))
	s.mu.Unlock()
	s.fire() // it may have happened already
	t := time.NewTimer(within)
	defer t.Stop()
	select {
	case <-w.done:
		return w.at, nil
	case <-t.C:
		s.mu.Lock()
		for i, x := range s.watches {
			if x == w {
				s.watches = append(s.watches[:i], s.watches[i+1:]...)
				break
			}
		}
		s.nwatch.Store(int32(len(s.watches)))
		s.mu.Unlock()
		return time.Time{}, fmt.Errorf("after %s: counted %d of %d %q", within, s.count(idx), target, s.pats[idx])
	}
}

// pump reads r into s until r fails; it returns the read error.
func (s *scanner) pump(r io.Reader) error {
	buf := make([]byte, 256<<10)
	n := 0
	for {
		m, err := r.Read(buf[n:])
		n += m
		if m > 0 {
			used := s.feed(buf[:n])
			n = copy(buf, buf[used:n])
			if n == len(buf) { // an <iq> tag longer than the buffer: not ours
				n = 0
			}
		}
		if err != nil {
			return err
		}
	}
}

// sink is a component connection (e.g. sink.localhost) that stands for a
// million followers: the XMPP server routes every stanza for *@sink to it,
// and it counts them.
type sink struct {
	domain string
	conn   net.Conn
	sc     *scanner
	done   chan struct{}
	err    error
}

const (
	patMessage = 0 // index of "<message" in every scanner here
	patIQ      = 1 // index of "<iq" in sink scanners
)

// dialComponent logs a component in with mellium and returns the bare
// connection: from then on the caller reads and writes raw bytes.
func dialComponent(ctx context.Context, addr, domain, secret string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The session is only used for the handshake. Nothing is sent to the
	// component before <handshake/>, so no stanza sits in mellium's buffer.
	if _, err := component.NewSession(ctx, jid.MustParse(domain), []byte(secret), conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("component %s handshake: %w", domain, err)
	}
	return conn, nil
}

func startSink(t *runner, addr, domain, secret string, patterns ...string) *sink {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := dialComponent(ctx, addr, domain, secret)
	if err != nil {
		t.Fatalf("sink %s: %v", domain, err)
	}
	s := &sink{domain: domain, conn: conn, sc: newScanner(append([]string{"<message", "<iq"}, patterns...)...), done: make(chan struct{})}
	go func() {
		s.err = s.sc.pump(conn)
		close(s.done)
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		<-s.done
	})
	return s
}

// endpoint is a bare XEP-0114 accept endpoint: it takes the gateway's
// component connection in place of an XMPP server, checks the handshake,
// counts what arrives and answers every IQ get (the delivery pings) with a
// result, and nothing else. It measures Starling's own ceiling.
type endpoint struct {
	ln     net.Listener
	domain string
	secret string
	sc     *scanner
	pings  atomic.Int64
	conns  atomic.Int64
	wg     sync.WaitGroup
	mu     sync.Mutex
	live   []net.Conn
}

func startEndpoint(t *runner, domain, secret string, patterns ...string) *endpoint {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("endpoint: %v", err)
	}
	e := &endpoint{ln: ln, domain: domain, secret: secret, sc: newScanner(append([]string{"<message"}, patterns...)...)}
	e.wg.Add(1)
	go e.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		e.mu.Lock()
		for _, c := range e.live {
			_ = c.Close()
		}
		e.mu.Unlock()
		e.wg.Wait()
	})
	return e
}

func (e *endpoint) addr() string { return e.ln.Addr().String() }

func (e *endpoint) accept() {
	defer e.wg.Done()
	for {
		c, err := e.ln.Accept()
		if err != nil {
			return
		}
		e.mu.Lock()
		e.live = append(e.live, c)
		e.mu.Unlock()
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer c.Close()
			_ = e.serve(c)
		}()
	}
}

var attrRe = regexp.MustCompile(`\s(type|id|from|to)=(?:"([^"]*)"|'([^']*)')`)

func (e *endpoint) serve(c net.Conn) error {
	br := bufio.NewReaderSize(c, 4096)
	// The stream header: skip the XML declaration, read up to the end of
	// <stream:stream ...>.
	var head []byte
	for !bytes.Contains(head, []byte("<stream:stream")) || !bytes.HasSuffix(head, []byte(">")) {
		b, err := br.ReadBytes('>')
		if err != nil {
			return err
		}
		head = append(head, b...)
	}
	id := fmt.Sprintf("bench%d", time.Now().UnixNano())
	fmt.Fprintf(c, `<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:component:accept' from='%s' id='%s'>`, e.domain, id)
	var hs []byte
	for !bytes.Contains(hs, []byte("</handshake>")) {
		b, err := br.ReadBytes('>')
		if err != nil {
			return err
		}
		hs = append(hs, b...)
	}
	sum := sha1.Sum([]byte(id + e.secret))
	want := hex.EncodeToString(sum[:])
	if !bytes.Contains(hs, []byte(">"+want+"<")) {
		fmt.Fprint(c, `<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`)
		return errors.New("endpoint: bad handshake")
	}
	if _, err := io.WriteString(c, "<handshake/>"); err != nil {
		return err
	}
	e.conns.Add(1)

	w := bufio.NewWriter(c)
	var reply []byte
	onIQ := func(tag []byte) {
		var typ, id, from, to string
		for _, m := range attrRe.FindAllSubmatch(tag, -1) {
			v := string(m[2]) + string(m[3])
			switch string(m[1]) {
			case "type":
				typ = v
			case "id":
				id = v
			case "from":
				from = v
			case "to":
				to = v
			}
		}
		if typ != "get" && typ != "set" {
			return
		}
		e.pings.Add(1)
		reply = fmt.Appendf(reply[:0], `<iq type="result" id="%s" from="%s" to="%s"/>`, id, to, from)
		_, _ = w.Write(reply)
	}
	// One scanner per endpoint: one connection at a time is all a test
	// needs; the callback writes to this connection.
	e.sc.onIQ.Store(&onIQ)
	sc := e.sc
	buf := make([]byte, 256<<10)
	n := br.Buffered()
	if n > 0 {
		_, _ = io.ReadFull(br, buf[:n])
	}
	for {
		if n > 0 {
			used := sc.feed(buf[:n])
			n = copy(buf, buf[used:n])
			if w.Buffered() > 0 {
				if err := w.Flush(); err != nil {
					return err
				}
			}
		}
		m, err := c.Read(buf[n:])
		n += m
		if err != nil {
			return err
		}
	}
}
