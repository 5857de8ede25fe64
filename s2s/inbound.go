package s2s

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"starling.dev/starling/dialback"
)

// authTimeout is how long an inbound stream may take to authenticate a
// first domain, or to finish what it came for (a stream that only asks us
// to verify keys never authenticates).
const authTimeout = 60 * time.Second

// maxVerifying bounds the key verifications one inbound stream may have in
// flight.
const maxVerifying = 8

// inbound is a stream a remote server opened to us, the one its stanzas
// to us travel on.
type inbound struct {
	srv    *Server
	conn   net.Conn
	in     *xmlIn
	out    *xmlOut
	id     string // our stream id, which the peer's key is for
	secure bool
	peer   string // the from of the peer's header, for logs
	// headerSent is set once our stream header is out.
	headerSent bool

	mu        sync.Mutex
	authed    map[string]bool // domains authenticated on the stream
	verifying int
	wg        sync.WaitGroup // verifications in flight
}

// serveInbound serves one accepted connection until it ends.
func (s *Server) serveInbound(ctx context.Context, conn net.Conn) {
	s.metrics.opened("in")
	defer s.metrics.closed("in")
	st := &inbound{srv: s, conn: conn, out: newXMLOut(conn, s.cfg.WriteTimeout), authed: map[string]bool{}}
	_, st.secure = conn.(*tls.Conn)
	stop := context.AfterFunc(ctx, func() {
		if st.out.end(nil) {
			_ = st.current().SetReadDeadline(time.Now().Add(closeGrace))
		}
	})
	err := st.serve(ctx)
	stop()
	st.end(err)
	_ = st.current().Close()
	st.wg.Wait()
	if err != nil && !errors.Is(err, io.EOF) && ctx.Err() == nil {
		s.log.Info("s2s inbound stream ended", "from", st.peer, "addr", conn.RemoteAddr().String(), "err", err)
	}
}

// current is the connection, TLS once STARTTLS is done.
func (st *inbound) current() net.Conn {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.conn
}

// end closes our side of the stream, with the stream error err stands for
// when it is ours to send. A stream that fails before our header went out
// gets one first: a stream error must be inside a stream.
func (st *inbound) end(err error) {
	se := streamErrorFor(err)
	if se != nil && !st.headerSent {
		_ = st.out.writeBytes(header(st.srv.cfg.Domain, "", newStreamID()))
	}
	st.out.end(se)
}

// serve negotiates the stream and reads it until it ends.
func (st *inbound) serve(ctx context.Context) error {
	cfg := st.srv.cfg
	_ = st.conn.SetDeadline(time.Now().Add(authTimeout))
	st.in = newXMLIn(st.conn, cfg.MaxStanza)
	for {
		info, err := st.in.header()
		if err != nil {
			return err
		}
		if to := info.To.String(); to != "" && !strings.EqualFold(to, cfg.Domain) {
			return streamErr(stream.HostUnknown, "this server is %s, not %s", cfg.Domain, to)
		}
		st.peer = info.From.String()
		if strings.EqualFold(st.peer, cfg.Domain) {
			return streamErr(stream.UndefinedCondition, "a stream from %s to itself", cfg.Domain)
		}
		st.id = newStreamID()
		hdr := header(cfg.Domain, st.peer, st.id)
		if info.Version.Major >= 1 {
			hdr = append(hdr, st.features()...)
		}
		if err := st.out.writeBytes(hdr); err != nil {
			return err
		}
		st.headerSent = true
		restart, err := st.elements(ctx)
		if !restart {
			return err
		}
	}
}

// tlsRequired reports whether the stream must be secured before anything
// else.
func (st *inbound) tlsRequired() bool { return !st.secure && !st.srv.cfg.Insecure }

// features renders our stream features: STARTTLS while the stream is not
// secured and we have a certificate, dialback once TLS is done or not
// required.
func (st *inbound) features() []byte {
	b := []byte("<stream:features>")
	if !st.secure && st.srv.cfg.TLS != nil {
		b = append(b, `<starttls xmlns="`+nsTLS+`">`...)
		if st.tlsRequired() {
			b = append(b, "<required/>"...)
		}
		b = append(b, "</starttls>"...)
	}
	if !st.tlsRequired() {
		b = append(b, `<dialback xmlns="`+dialback.NSFeature+`"><errors/></dialback>`...)
	}
	return append(b, "</stream:features>"...)
}

// elements reads the stream's elements until it ends or restarts (after
// STARTTLS: restart is then true).
func (st *inbound) elements(ctx context.Context) (restart bool, err error) {
	for {
		if st.authenticated() {
			st.in.readDeadline(time.Now().Add(st.srv.cfg.ReadTimeout))
		}
		start, err := st.in.next()
		if err != nil {
			return false, err
		}
		switch {
		case start.Name.Space == nsTLS && start.Name.Local == "starttls":
			return st.startTLS()
		case st.tlsRequired():
			st.srv.metrics.refused("plaintext")
			return false, streamErr(stream.PolicyViolation, "%s requires TLS", st.srv.cfg.Domain)
		case dialback.IsDialback(start):
			e, err := st.in.decodeDialback(start)
			if errors.Is(err, dialback.ErrMalformed) || errors.Is(err, dialback.ErrNotDialback) {
				return false, streamErr(stream.ImproperAddressing, "%v", err)
			}
			if err != nil {
				return false, err
			}
			if err := st.dialback(ctx, e); err != nil {
				return false, err
			}
		case start.Name.Space == stanza.NSServer && isStanza(start.Name.Local):
			if err := st.stanza(start); err != nil {
				return false, err
			}
		default:
			if err := st.in.skip(); err != nil {
				return false, err
			}
		}
	}
}

func isStanza(local string) bool {
	return local == "message" || local == "presence" || local == "iq"
}

// startTLS answers <starttls/> and secures the connection.
func (st *inbound) startTLS() (bool, error) {
	if err := st.in.skip(); err != nil {
		return false, err
	}
	if st.secure || st.srv.cfg.TLS == nil {
		_ = st.out.writeBytes([]byte(`<failure xmlns="` + nsTLS + `"/>`))
		return false, streamErr(stream.UndefinedCondition, "STARTTLS not available")
	}
	if err := st.out.writeBytes([]byte(`<proceed xmlns="` + nsTLS + `"/>`)); err != nil {
		return false, err
	}
	tc := tls.Server(st.conn, st.srv.serverTLS())
	if err := tc.Handshake(); err != nil {
		return false, err
	}
	st.mu.Lock()
	st.conn, st.secure = tc, true
	st.mu.Unlock()
	st.out.restart(tc)
	st.in = newXMLIn(tc, st.srv.cfg.MaxStanza)
	return true, nil
}

func (st *inbound) authenticated() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.authed) > 0
}

// dialback handles a dialback request: a <db:verify/> is answered at once
// (whatever else is pending: the peer may be waiting for it to authenticate
// the very stream we need for our own verification); a <db:result/> is
// verified with its authoritative server, meanwhile reading goes on.
func (st *inbound) dialback(ctx context.Context, e dialback.Element) error {
	domain := st.srv.cfg.Domain
	if e.Type != dialback.Request {
		return nil // answers belong on our own streams
	}
	if e.Kind == dialback.Verify {
		ok := strings.EqualFold(e.To, domain) && dialback.ValidKey(st.srv.cfg.Secret, e.From, domain, e.ID, e.Key)
		ans := dialback.Element{Kind: dialback.Verify, From: domain, To: e.From, ID: e.ID, Type: dialback.Invalid}
		if ok {
			ans.Type = dialback.Valid
		} else {
			st.srv.log.Warn("asked to verify a dialback key that is not ours", "from", e.From, "peer", st.peer)
		}
		return st.out.writeBytes(ans.Append(nil))
	}
	if !strings.EqualFold(e.To, domain) {
		return streamErr(stream.HostUnknown, "this server is %s, not %s", domain, e.To)
	}
	if strings.EqualFold(e.From, domain) {
		return streamErr(stream.InvalidFrom, "%s is this server", e.From)
	}
	st.mu.Lock()
	if st.verifying >= maxVerifying {
		st.mu.Unlock()
		return streamErr(stream.PolicyViolation, "too many dialback requests at once")
	}
	st.verifying++
	st.wg.Add(1)
	st.mu.Unlock()
	st.srv.heardFrom(e.From)
	id := st.id
	go func() { // owned by st.wg, waited for when the stream ends
		defer st.wg.Done()
		st.verify(ctx, id, e)
	}()
	return nil
}

// verify asks the authoritative server of e.From whether e.Key is its key
// for our stream id, and tells the peer the verdict.
func (st *inbound) verify(ctx context.Context, id string, e dialback.Element) {
	domain := strings.ToLower(e.From)
	verdict := dialback.Error
	ctx, cancel := context.WithTimeout(ctx, st.srv.cfg.DialTimeout)
	defer cancel()
	o, err := st.srv.outbound(domain)
	if err == nil {
		verdict, err = o.verify(ctx, id, e.Key)
	}
	ans := dialback.Element{Kind: dialback.Result, From: st.srv.cfg.Domain, To: e.From, Type: verdict}
	st.mu.Lock()
	st.verifying--
	if verdict == dialback.Valid {
		st.authed[domain] = true
	}
	st.mu.Unlock()
	switch verdict {
	case dialback.Valid:
		// The read in progress still has the authentication deadline.
		_ = st.current().SetReadDeadline(time.Now().Add(st.srv.cfg.ReadTimeout))
		_ = st.out.writeBytes(ans.Append(nil))
		st.srv.log.Debug("s2s inbound stream authenticated", "from", domain)
	case dialback.Invalid:
		st.srv.metrics.authFailed("in")
		st.srv.log.Warn("dialback key refused by its authoritative server", "from", domain)
		_ = st.out.writeBytes(ans.Append(nil))
		st.out.end(streamErrorFor(streamErr(stream.NotAuthorized, "dialback key refused by %s", domain)))
	default:
		ans.Condition = "remote-server-not-found"
		st.srv.log.Warn("dialback key of a remote server could not be verified", "from", domain, "err", err)
		_ = st.out.writeBytes(ans.Append(nil))
		st.out.end(streamErrorFor(streamErr(stream.RemoteConnectionFailed, "cannot verify the key of %s: %v", domain, err)))
	}
}

// stanza hands a stanza to the handler, if it comes from a domain
// authenticated on this stream and is addressed to our domain.
func (st *inbound) stanza(start xml.StartElement) error {
	var from, to string
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "from":
			from = a.Value
		case "to":
			to = a.Value
		}
	}
	domain := strings.ToLower(domainOf(from))
	st.mu.Lock()
	ok := st.authed[domain]
	st.mu.Unlock()
	if !ok {
		return streamErr(stream.InvalidFrom, "%q is not authenticated on this stream", from)
	}
	if !strings.EqualFold(domainOf(to), st.srv.cfg.Domain) {
		st.srv.log.Debug("stanza for another domain dropped", "from", from, "to", to)
		return st.in.skip()
	}
	r := xmlstream.InnerElement(st.in.d)
	if h := st.srv.handler(); h != nil {
		h.HandleStanza(r, &start)
	}
	_, err := xmlstream.Copy(xmlstream.Discard(), r)
	return err
}
