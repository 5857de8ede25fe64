package chaos

import (
	"bytes"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"starling.dev/starling/internal/testenv"
)

// Sink is an XEP-0114 component that counts, per post id, how many
// messages each recipient at its domain received, and when they arrived.
// Unlike testenv.Sink it reconnects when the XMPP server restarts, and it can
// send stanzas (presence from its users) on its stream.
type Sink struct {
	domain, addr, secret string

	mu    sync.Mutex
	posts map[string]*postStats
	conn  net.Conn // the current connection, nil while reconnecting

	connects atomic.Int64
	sendErrs atomic.Int64
	done     chan struct{}
}

// postStats is what the sink saw of one post id.
type postStats struct {
	to       map[string]int // recipient -> messages
	total    int
	first    time.Time
	last     time.Time
	maxGap   time.Duration
	gapStart time.Time // when the longest gap began
}

// StartSink connects a sink for domain at addr and keeps it connected until
// the test ends, reconnecting within milliseconds of a server restart (the
// gateway waits at least 250 ms, so the sink is back first and stanzas for
// it are not bounced).
func StartSink(t testenv.TB, addr, secret, domain string) *Sink {
	t.Helper()
	s := &Sink{domain: domain, addr: addr, secret: secret, posts: map[string]*postStats{}, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go s.run(ctx, first)
	t.Cleanup(func() {
		cancel()
		s.mu.Lock()
		if s.conn != nil {
			s.conn.Close()
		}
		s.mu.Unlock()
		<-s.done
	})
	if err := <-first; err != nil {
		t.Fatalf("chaos: sink: %v", err)
	}
	return s
}

// run connects, reads until the connection fails, and connects again, until
// ctx ends. The first connection's outcome goes to first.
func (s *Sink) run(ctx context.Context, first chan<- error) {
	defer close(s.done)
	for ctx.Err() == nil {
		// The handshake's context lives as long as the connection: mellium
		// moves the deadlines when it ends (see testenv.DialComponent).
		cctx, ccancel := context.WithCancel(ctx)
		conn, err := testenv.DialComponent(cctx, s.addr, s.domain, s.secret)
		if first != nil {
			first <- err
			first = nil
			if err != nil {
				ccancel()
				return
			}
		}
		if err != nil {
			ccancel()
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		s.connects.Add(1)
		s.mu.Lock()
		s.conn = conn
		s.mu.Unlock()
		s.pump(conn)
		s.mu.Lock()
		s.conn = nil
		s.mu.Unlock()
		conn.Close()
		ccancel()
	}
}

var (
	msgOpen = []byte("<message")
	attrTo  = []byte(" to=")
	attrID  = []byte(" id=")
)

// pump reads conn and counts the <message> start tags in it.
func (s *Sink) pump(conn net.Conn) {
	buf := make([]byte, 0, 512<<10)
	rd := make([]byte, 256<<10)
	for {
		n, err := conn.Read(rd)
		if n > 0 {
			buf = append(buf, rd[:n]...)
			used := s.feed(buf, time.Now())
			buf = buf[:copy(buf, buf[used:])]
		}
		if err != nil {
			return
		}
	}
}

// feed counts the whole <message ...> start tags in data and returns how
// many bytes it consumed.
func (s *Sink) feed(data []byte, now time.Time) int {
	off := 0
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for {
		i := bytes.Index(data[off:], msgOpen)
		if i < 0 {
			// Keep what could be the start of a cut "<message".
			return max(off, len(data)-(len(msgOpen)-1))
		}
		i += off
		j := bytes.IndexByte(data[i:], '>')
		if j < 0 {
			return i
		}
		tag := data[i : i+j]
		off = i + j + 1
		id, to := attr(tag, attrID), attr(tag, attrTo)
		if id == "" || to == "" {
			continue
		}
		p := s.posts[id]
		if p == nil {
			p = &postStats{to: map[string]int{}, first: now}
			s.posts[id] = p
		}
		p.to[to]++
		p.total++
		if !seen[id] {
			seen[id] = true
			if gap := now.Sub(p.last); !p.last.IsZero() && gap > p.maxGap {
				p.maxGap, p.gapStart = gap, p.last
			}
			p.last = now
		}
	}
}

// attr returns the value of the attribute whose name (with a leading space
// and the '=') is name, in either quote style, or "".
func attr(tag, name []byte) string {
	i := bytes.Index(tag, name)
	if i < 0 || i+len(name) >= len(tag) {
		return ""
	}
	v := tag[i+len(name):]
	q := v[0]
	if q != '"' && q != '\'' {
		return ""
	}
	j := bytes.IndexByte(v[1:], q)
	if j < 0 {
		return ""
	}
	return string(v[1 : 1+j])
}

// Send writes raw stanzas on the current connection; it reports false when
// the sink is between connections or the write fails.
func (s *Sink) Send(raw string) bool {
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	if conn == nil {
		s.sendErrs.Add(1)
		return false
	}
	_ = conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte(raw)); err != nil {
		s.sendErrs.Add(1)
		return false
	}
	return true
}

// Connected reports whether the sink has a connection now.
func (s *Sink) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn != nil
}

// Connects is how many times the sink logged in.
func (s *Sink) Connects() int64 { return s.connects.Load() }

// Total is how many messages of post id arrived, duplicates included.
func (s *Sink) Total(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.posts[id]; p != nil {
		return p.total
	}
	return 0
}

// Tally is what the sink saw of one post.
type Tally struct {
	// Counts is messages per recipient.
	Counts map[string]int
	Total  int
	// First and Last are when the first and the last message arrived.
	First, Last time.Time
	// LongestGap is the longest time between two reads that carried
	// messages of the post, and GapStart when it began.
	LongestGap time.Duration
	GapStart   time.Time
}

// Tally returns a copy of what the sink saw of post id.
func (s *Sink) Tally(id string) Tally {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.posts[id]
	if p == nil {
		return Tally{Counts: map[string]int{}}
	}
	c := make(map[string]int, len(p.to))
	for k, v := range p.to {
		c[k] = v
	}
	return Tally{Counts: c, Total: p.total, First: p.first, Last: p.last, LongestGap: p.maxGap, GapStart: p.gapStart}
}
