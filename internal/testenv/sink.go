package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"regexp"
	"sync/atomic"
	"time"
)

// Sink is a bare XEP-0114 component that counts the messages the XMPP
// server routes to its domain. Followers at the sink's domain stand in for a
// million recipients without a million c2s accounts.
type Sink struct {
	Domain string
	count  atomic.Int64
	done   chan struct{}
}

var streamID = regexp.MustCompile(`\bid=['"]([^'"]+)['"]`)

// StartSink connects a component for domain to the component port at addr
// (ComponentAddrOf the domain) with secret, and counts every <message it
// receives until the test ends.
func StartSink(t TB, addr, secret, domain string) *Sink {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("testenv: sink dial: %v", err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReaderSize(conn, 64<<10)
	fmt.Fprintf(conn, `<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='%s'>`, domain)
	header, err := r.ReadString('>')
	for err == nil && !bytes.Contains([]byte(header), []byte("stream:stream")) {
		header, err = r.ReadString('>')
	}
	m := streamID.FindStringSubmatch(header)
	if err != nil || m == nil {
		conn.Close()
		t.Fatalf("testenv: sink stream header %q: %v", header, err)
	}
	sum := sha1.Sum([]byte(m[1] + secret))
	fmt.Fprintf(conn, "<handshake>%s</handshake>", hex.EncodeToString(sum[:]))
	reply, err := r.ReadString('>')
	if err != nil || !bytes.Contains([]byte(reply), []byte("handshake")) {
		conn.Close()
		t.Fatalf("testenv: sink %s handshake refused: %q %v", domain, reply, err)
	}
	_ = conn.SetDeadline(time.Time{})
	s := &Sink{Domain: domain, done: make(chan struct{})}
	go s.read(r)
	t.Cleanup(func() {
		conn.Close()
		<-s.done
	})
	return s
}

// read counts "<message" in the byte stream, minding matches split across
// reads.
func (s *Sink) read(r io.Reader) {
	defer close(s.done)
	pat := []byte("<message")
	buf := make([]byte, 64<<10)
	keep := 0
	for {
		n, err := r.Read(buf[keep:])
		if n > 0 {
			data := buf[:keep+n]
			s.count.Add(int64(bytes.Count(data, pat)))
			keep = min(len(pat)-1, len(data))
			copy(buf, data[len(data)-keep:])
		}
		if err != nil {
			return
		}
	}
}

// Count is how many messages arrived so far.
func (s *Sink) Count() int64 { return s.count.Load() }
