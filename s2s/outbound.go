package s2s

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/dial"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"starling.dev/starling/dialback"
)

// Outbound is a stream this server opened to a remote domain, the one its
// stanzas to that domain travel on. Write is safe for concurrent use.
type Outbound struct {
	srv    *Server
	domain string
	// queue holds what Send handed over, written by the stream's pump
	// once it is ready.
	queue chan []byte

	open  chan struct{} // closed once it can carry <db:verify/>
	ready chan struct{} // closed once authenticated: stanzas may go
	done  chan struct{} // closed when it has ended
	err   error         // why it ended; set before done is closed

	out       *xmlOut // set before open is closed
	lastWrite atomic.Int64
	writers   atomic.Int32 // Write calls under way: a busy stream gets a sibling (Server.outbound)

	connMu sync.Mutex // guards conn, replaced by STARTTLS
	conn   net.Conn

	vmu      sync.Mutex
	verifies map[string]chan dialback.Type // pending <db:verify/> by stream id
}

func newOutbound(s *Server, domain string) *Outbound {
	return &Outbound{
		srv: s, domain: domain,
		queue: make(chan []byte, s.cfg.QueueSize),
		open:  make(chan struct{}), ready: make(chan struct{}), done: make(chan struct{}),
		verifies: map[string]chan dialback.Type{},
	}
}

// Domain is the remote domain the stream goes to.
func (o *Outbound) Domain() string { return o.domain }

// Secure reports whether the stream runs over TLS.
func (o *Outbound) Secure() bool {
	_, ok := o.currentConn().(*tls.Conn)
	return ok
}

// Done is closed when the stream has ended.
func (o *Outbound) Done() <-chan struct{} { return o.done }

// isReady reports whether the stream is authenticated.
func (o *Outbound) isReady() bool {
	select {
	case <-o.ready:
		return true
	default:
		return false
	}
}

// errNotReady refuses writes on a stream not authenticated yet.
var errNotReady = errors.New("s2s: stream not ready")

// Write runs write with the stream's buffered writer, under its write lock
// and write timeout, then flushes. What it writes must be whole stanzas
// from our domain. A failed write ends the stream.
func (o *Outbound) Write(write func(w *bufio.Writer) error) error {
	if !o.isReady() {
		return errNotReady
	}
	o.writers.Add(1)
	defer o.writers.Add(-1)
	o.lastWrite.Store(time.Now().UnixNano())
	if err := o.out.write(write); err != nil {
		return fmt.Errorf("s2s: write to %s: %w", o.domain, err)
	}
	return nil
}

// run opens the stream, negotiates it, then reads it until it ends; it is
// the stream's owner.
func (o *Outbound) run(ctx context.Context) {
	o.srv.metrics.opened("out")
	var wasReady bool
	err := o.serve(ctx, &wasReady)
	o.connMu.Lock()
	if o.conn != nil {
		_ = o.conn.Close()
	}
	o.connMu.Unlock()
	if err == nil {
		err = errors.New("s2s: stream closed")
	}
	switch {
	case ctx.Err() != nil:
	case wasReady:
		o.srv.log.Info("s2s stream ended", "to", o.domain, "err", err)
	default:
		o.srv.metrics.unreachable()
		o.srv.log.Warn("s2s stream to remote domain failed", "to", o.domain, "err", err)
	}
	o.err = err
	o.srv.outboundEnded(o, wasReady, err)
	close(o.done)
	if n := len(o.queue); n > 0 {
		o.srv.metrics.droppedN(n)
	}
	o.srv.metrics.closed("out")
	if h := o.srv.handler(); h != nil {
		h.OutboundClosed(o)
	}
}

// serve is run's work; it sets wasReady once the stream is authenticated.
func (o *Outbound) serve(ctx context.Context, wasReady *bool) error {
	deadline := time.Now().Add(o.srv.cfg.DialTimeout)
	dctx, cancel := context.WithDeadline(ctx, deadline)
	conn, err := o.srv.dial(dctx, o.domain)
	cancel()
	if err != nil {
		return err
	}
	o.setConn(conn)
	o.out = newXMLOut(conn, o.srv.cfg.WriteTimeout)
	// Shutting down ends the stream politely; the peer then closes its
	// end, which ends the reading below.
	stop := context.AfterFunc(ctx, func() { o.close(nil) })
	defer stop()

	_ = conn.SetDeadline(deadline)
	in, id, err := o.negotiate(conn)
	if err != nil {
		return o.fail(err)
	}
	close(o.open)
	key := dialback.Key(o.srv.cfg.Secret, o.domain, o.srv.cfg.Domain, id)
	res := dialback.Element{Kind: dialback.Result, From: o.srv.cfg.Domain, To: o.domain, Key: key}
	if err := o.out.writeBytes(res.Append(nil)); err != nil {
		return err
	}
	// Read until the verdict; <db:verify/> answers may come first.
	for {
		e, err := o.readDialback(in)
		if err != nil {
			return o.fail(err)
		}
		if e.Kind != dialback.Result {
			continue
		}
		if e.Type != dialback.Valid {
			o.srv.metrics.authFailed("out")
			return o.fail(fmt.Errorf("s2s: %s refused our dialback key (%s %s)", o.domain, e.Type, e.Condition))
		}
		break
	}
	_ = o.currentConn().SetDeadline(time.Time{})
	*wasReady = true
	o.lastWrite.Store(time.Now().UnixNano())
	close(o.ready)
	o.srv.log.Debug("s2s stream ready", "to", o.domain)

	stopPump := make(chan struct{})
	pumped := make(chan struct{})
	go func() { // owned here: stopped and waited for below
		defer close(pumped)
		o.pump(stopPump)
	}()
	defer func() { close(stopPump); <-pumped }()
	for {
		if _, err := o.readDialback(in); err != nil {
			return o.fail(err)
		}
	}
}

// fail ends the stream with the stream error err stands for, if it is ours
// to send, and returns err.
func (o *Outbound) fail(err error) error {
	o.close(streamErrorFor(err))
	return err
}

// close ends our side of the stream and gives the peer a moment to end
// theirs.
func (o *Outbound) close(se *stream.Error) {
	if o.out.end(se) {
		_ = o.currentConn().SetReadDeadline(time.Now().Add(closeGrace))
	}
}

// closeGrace is how long a closing stream waits for the peer's end.
const closeGrace = 2 * time.Second

func (o *Outbound) setConn(c net.Conn) {
	o.connMu.Lock()
	defer o.connMu.Unlock()
	o.conn = c
}

func (o *Outbound) currentConn() net.Conn {
	o.connMu.Lock()
	defer o.connMu.Unlock()
	return o.conn
}

// negotiate opens the stream, upgrades it with STARTTLS when the peer
// offers it (refusing a peer that does not, unless Insecure), and returns
// its reader and the id of the peer's stream header, which our key is for.
func (o *Outbound) negotiate(conn net.Conn) (*xmlIn, string, error) {
	cfg := o.srv.cfg
	secure := false
	for {
		if err := o.out.writeBytes(header(cfg.Domain, o.domain, "")); err != nil {
			return nil, "", err
		}
		in := newXMLIn(conn, cfg.MaxStanza)
		info, err := in.header()
		if err != nil {
			return nil, "", err
		}
		if info.ID == "" {
			return nil, "", streamErr(stream.BadFormat, "no stream id")
		}
		if from := info.From.String(); from != "" && !strings.EqualFold(from, o.domain) {
			return nil, "", streamErr(stream.InvalidFrom, "expected %s, not %s", o.domain, from)
		}
		var f features
		if info.Version.Major >= 1 {
			if f, err = in.features(); err != nil {
				return nil, "", err
			}
		}
		if f.startTLS && !secure {
			tc, err := o.startTLS(in, conn)
			if err != nil {
				return nil, "", err
			}
			conn, secure = tc, true
			o.setConn(tc)
			o.out.restart(tc)
			continue
		}
		if !secure && !cfg.Insecure {
			o.srv.metrics.refused("plaintext")
			return nil, "", streamErr(stream.PolicyViolation, "%s requires TLS; %s offers none", cfg.Domain, o.domain)
		}
		return in, info.ID, nil
	}
}

// startTLS asks for TLS and returns the secured connection.
func (o *Outbound) startTLS(in *xmlIn, conn net.Conn) (net.Conn, error) {
	if err := o.out.writeBytes([]byte(`<starttls xmlns="` + nsTLS + `"/>`)); err != nil {
		return nil, err
	}
	start, err := in.next()
	if err != nil {
		return nil, err
	}
	if start.Name.Space != nsTLS || start.Name.Local != "proceed" {
		return nil, fmt.Errorf("s2s: %s refused STARTTLS (%s)", o.domain, start.Name.Local)
	}
	if err := in.skip(); err != nil {
		return nil, err
	}
	tc := tls.Client(conn, o.srv.clientTLS(o.domain))
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("s2s: TLS with %s: %w", o.domain, err)
	}
	return tc, nil
}

// readDialback reads the next element: dialback answers are returned (the
// answers to our <db:verify/> requests are handed to their waiters too);
// anything else is skipped. Without bidi, a peer has no stanzas to send on
// our stream.
func (o *Outbound) readDialback(in *xmlIn) (dialback.Element, error) {
	for {
		start, err := in.next()
		if err != nil {
			return dialback.Element{}, err
		}
		if !dialback.IsDialback(start) {
			if err := in.skip(); err != nil {
				return dialback.Element{}, err
			}
			continue
		}
		e, err := in.decodeDialback(start)
		if err != nil {
			if errors.Is(err, dialback.ErrMalformed) {
				return e, streamErr(stream.ImproperAddressing, "%v", err)
			}
			return e, err
		}
		if !strings.EqualFold(e.From, o.domain) || !strings.EqualFold(e.To, o.srv.cfg.Domain) {
			return e, streamErr(stream.InvalidFrom, "dialback from %s to %s on the stream to %s", e.From, e.To, o.domain)
		}
		if e.Kind == dialback.Verify && e.Type != dialback.Request {
			o.vmu.Lock()
			if ch, ok := o.verifies[e.ID]; ok {
				ch <- e.Type // buffered, and answered once
				delete(o.verifies, e.ID)
			}
			o.vmu.Unlock()
			continue
		}
		return e, nil
	}
}

// verify asks the domain, on this stream, whether key is the key it issued
// for its stream id to us (the receiving server's part of dialback).
func (o *Outbound) verify(ctx context.Context, id, key string) (dialback.Type, error) {
	select {
	case <-o.open:
	case <-o.done:
		return dialback.Error, o.err
	case <-ctx.Done():
		return dialback.Error, ctx.Err()
	}
	ch := make(chan dialback.Type, 1)
	o.vmu.Lock()
	o.verifies[id] = ch
	o.vmu.Unlock()
	defer func() {
		o.vmu.Lock()
		delete(o.verifies, id)
		o.vmu.Unlock()
	}()
	req := dialback.Element{Kind: dialback.Verify, From: o.srv.cfg.Domain, To: o.domain, ID: id, Key: key}
	if err := o.out.writeBytes(req.Append(nil)); err != nil {
		return dialback.Error, err
	}
	select {
	case t := <-ch:
		return t, nil
	case <-o.done:
		return dialback.Error, o.err
	case <-ctx.Done():
		return dialback.Error, ctx.Err()
	}
}

// pump writes what Send queued, several stanzas per write, and ends the
// stream once nothing was written for IdleTimeout.
func (o *Outbound) pump(stop <-chan struct{}) {
	idle := o.srv.cfg.IdleTimeout
	tick := time.NewTicker(max(idle/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case b := <-o.queue:
			o.lastWrite.Store(time.Now().UnixNano())
			err := o.out.write(func(w *bufio.Writer) error {
				w.Write(b) // errors are sticky: see Flush
			more:
				for w.Buffered() < writeBuffer/2 {
					select {
					case next := <-o.queue:
						w.Write(next)
					default:
						break more
					}
				}
				return nil
			})
			if err != nil {
				return // the stream is closed; run ends
			}
		case now := <-tick.C:
			if now.Sub(time.Unix(0, o.lastWrite.Load())) >= idle {
				o.srv.log.Debug("s2s stream idle; closing", "to", o.domain)
				o.close(nil)
				return
			}
		}
	}
}

// features is what a peer's <stream:features/> offers that we use.
type features struct {
	startTLS bool
}

// features reads the peer's stream features.
func (in *xmlIn) features() (features, error) {
	var f features
	start, err := in.d.Token()
	for err == nil {
		if cd, ok := start.(xml.CharData); ok && len(strings.TrimSpace(string(cd))) == 0 {
			start, err = in.d.Token()
			continue
		}
		break
	}
	if err != nil {
		return f, err
	}
	s, ok := start.(xml.StartElement)
	if !ok || s.Name.Space != nsStream || s.Name.Local != "features" {
		if ok && s.Name.Space == nsStream && s.Name.Local == "error" {
			return f, in.streamError(s)
		}
		return f, streamErr(stream.BadFormat, "expected stream features")
	}
	var parsed struct {
		StartTLS *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
	}
	if err := in.d.DecodeElement(&parsed, &s); err != nil {
		return f, err
	}
	f.startTLS = parsed.StartTLS != nil
	return f, nil
}

// dial connects to domain: at the address Hosts gives, else through DNS
// (SRV _xmpp-server._tcp, then the domain's own A and AAAA at port 5269,
// as mellium's dialer does for server-to-server).
func (s *Server) dial(ctx context.Context, domain string) (net.Conn, error) {
	nd := net.Dialer{Resolver: s.cfg.Resolver}
	if addr, ok := s.cfg.Hosts[domain]; ok {
		return nd.DialContext(ctx, "tcp", addr)
	}
	j, err := jid.Parse(domain)
	if err != nil {
		return nil, fmt.Errorf("s2s: %q: %w", domain, err)
	}
	d := dial.Dialer{Dialer: nd, S2S: true, NoTLS: true}
	return d.Dial(ctx, "tcp", j.Domain())
}

// clientTLS is the TLS configuration of an outbound stream to domain: our
// certificate, if any, as client certificate; the peer's is not checked
// (dialback authenticates it, see Config.TLS).
func (s *Server) clientTLS(domain string) *tls.Config {
	var c *tls.Config
	if s.cfg.TLS != nil {
		c = s.cfg.TLS.Clone()
	} else {
		c = &tls.Config{}
	}
	c.ServerName = domain
	c.InsecureSkipVerify = true // dialback authenticates the peer
	c.MinVersion = max(c.MinVersion, tls.VersionTLS12)
	return c
}

// serverTLS is the TLS configuration of inbound streams: a client
// certificate is welcome but not checked.
func (s *Server) serverTLS() *tls.Config {
	c := s.cfg.TLS.Clone()
	if c.ClientAuth == tls.NoClientCert {
		c.ClientAuth = tls.RequestClientCert
	}
	c.MinVersion = max(c.MinVersion, tls.VersionTLS12)
	return c
}
