package main

import (
	"bufio"
	"bytes"
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

	"starling.dev/starling/internal/testenv"
)

// patMessage is the index of "<message" in every scanner here.
const patMessage = testenv.SinkMessages

// endpoint is the in-process view's bare XEP-0114 accept endpoint: it takes
// the gateway's component connection in place of an XMPP server, checks the
// handshake, counts "<message" bytes and answers every IQ get (the delivery
// pings) with a result, and nothing else. The headline view uses the
// receiver process (bench/receiver) instead, which parses.
type endpoint struct {
	ln     net.Listener
	domain string
	secret string
	sc     *testenv.Scanner
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
	e := &endpoint{ln: ln, domain: domain, secret: secret, sc: testenv.NewScanner(append([]string{"<message"}, patterns...)...)}
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
	e.sc.OnIQ(onIQ)
	sc := e.sc
	buf := make([]byte, 256<<10)
	n := br.Buffered()
	if n > 0 {
		_, _ = io.ReadFull(br, buf[:n])
	}
	for {
		if n > 0 {
			used := sc.Feed(buf[:n])
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
