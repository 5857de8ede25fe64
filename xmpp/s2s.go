package xmpp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"

	"starling.dev/starling/s2s"
)

// Federation is the transport of s2s mode, in which the gateway is the
// XMPP server of its domain and speaks server-to-server itself: remote
// servers' stanzas come in through Serve, ours go out on a stream per
// remote domain. *s2s.Server is the implementation.
type Federation interface {
	// Serve accepts remote servers' streams until ctx ends, handing their
	// stanzas to h; it fails only if it cannot listen.
	Serve(ctx context.Context, h s2s.Handler) error
	// Listening is closed once Serve listens.
	Listening() <-chan struct{}
	// Stream returns the ready stream to domain, opening it if need be;
	// the error wraps s2s.ErrUnreachable when the domain cannot be
	// reached.
	Stream(ctx context.Context, domain string) (*s2s.Outbound, error)
	// Send queues whole stanzas for domain without blocking; false means
	// they were dropped.
	Send(domain string, stanzas []byte) bool
}

var _ Federation = (*s2s.Server)(nil)

// WithFederation makes the component the XMPP server of its domain,
// federating through f (s2s mode) instead of connecting to an XMPP server:
// Config.Addr, Secret, PingTo and Connections are then unused. Everything
// else works as in component mode: the same handlers answer the same
// stanzas, and deliveries are confirmed by pings, now to each remote
// server.
func WithFederation(f Federation) Option { return func(c *Component) { c.fed = f } }

// runS2S is Run in s2s mode: the link is the listener, up while Serve
// listens.
func (c *Component) runS2S(parent context.Context) error {
	// Everything started here ends with ctx: when the parent ends, or
	// when the listener fails.
	ctx, cancel := context.WithCancel(parent)
	waitWork := c.startWork(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		waitWork()
	}()
	wg.Go(func() { c.expirePings(ctx) })
	served := make(chan error, 1)
	wg.Go(func() { served <- c.fed.Serve(ctx, s2sHandler{c}) })
	select {
	case <-c.fed.Listening():
	case err := <-served:
		return fmt.Errorf("xmpp: s2s: %w", err)
	}
	l := &link{gone: make(chan struct{}), id: rand.Text()}
	c.up(l)
	c.log.Info("s2s mode: serving the domain", "domain", c.cfg.Domain)
	stopProbes := c.probeWith(ctx, l.id, c.sendRawS2S)
	err := <-served
	stopProbes()
	c.down(l)
	return err
}

// s2sHandler hands what remote servers send to the component's handlers.
type s2sHandler struct{ c *Component }

var _ s2s.Handler = s2sHandler{}

// HandleStanza settles the answers to delivery pings at once, as the
// component's reader does; everything else goes through the very handler
// of component mode, whose immediate replies ("busy") are routed to the
// sender's domain.
func (h s2sHandler) HandleStanza(r xml.TokenReader, start *xml.StartElement) {
	c := h.c
	if start.Name.Local == "iq" {
		var typ, id, from string
		for _, a := range start.Attr {
			switch a.Name.Local {
			case "type":
				typ = a.Value
			case "id":
				id = a.Value
			case "from":
				from = a.Value
			}
		}
		if typ == string(stanza.ResultIQ) && strings.HasPrefix(id, pingPrefix) {
			// The s2s layer has checked that from's domain is
			// authenticated; the ping checks it is the one it went to.
			c.answeredS2S(id, domainOf(from))
			return
		}
		if typ == string(stanza.ErrorIQ) && strings.HasPrefix(id, pingPrefix) {
			// An error proves nothing was routed (a server going down
			// bounces what it holds): the ping is left to time out, and
			// its chunk is sent again.
			return
		}
	}
	var out outbox
	if err := c.handler().HandleXMPP(handlerIO{TokenReader: r, out: &out}, start); err != nil {
		c.log.Debug("s2s stanza not handled", "err", err)
	}
	if err := c.sendS2S(out.toks); err != nil {
		c.log.Warn("reply not sent", "err", err)
	}
}

// OutboundClosed fails the pings written on a stream that ended: their
// answers may never come.
func (h s2sHandler) OutboundClosed(o *s2s.Outbound) {
	h.c.pings.failLink(o, errNotConnected)
}

// answeredS2S settles a ping answer from the domain from: this gateway's,
// or forwarded to the replica that sent the ping (its stream to that
// domain may be another replica's than the stream the answer came on).
func (c *Component) answeredS2S(id, from string) {
	if c.pings.settleFrom(id, from) || c.relay == nil {
		return
	}
	c.relay.Forward(id)
	c.metrics.forwarded()
}

// handlerIO is what a handler reads its stanza from and writes its
// immediate replies to.
type handlerIO struct {
	xml.TokenReader
	out *outbox
}

func (h handlerIO) EncodeToken(t xml.Token) error { return h.out.EncodeToken(t) }

func (h handlerIO) Encode(v any) error {
	_, err := xmlstream.Copy(h.out, marshal(v))
	return err
}

func (h handlerIO) EncodeElement(v any, start xml.StartElement) error {
	var b bytes.Buffer
	if err := xml.NewEncoder(&b).EncodeElement(v, start); err != nil {
		return err
	}
	_, err := xmlstream.Copy(h.out, xml.NewDecoder(&b))
	return err
}

// sendS2S sends whole stanzas, each to its recipient's domain. It does not
// block: what cannot be queued is dropped (and counted by the s2s layer).
func (c *Component) sendS2S(toks []xml.Token) error {
	var errs []error
	var buf bytes.Buffer
	for len(toks) > 0 {
		n, to := stanzaSpan(toks)
		buf.Reset()
		if err := encodeStanza(&buf, toks[:n], c.cfg.Domain); err != nil {
			return fmt.Errorf("xmpp: encode reply: %w", err)
		}
		toks = toks[n:]
		if domain := domainOf(to); !c.fed.Send(domain, bytes.Clone(buf.Bytes())) {
			errs = append(errs, fmt.Errorf("xmpp: reply to %s dropped: its server is unreachable or its queue full", domain))
		}
	}
	return errors.Join(errs...)
}

// stanzaSpan returns how many tokens the first stanza of toks takes, and
// its to.
func stanzaSpan(toks []xml.Token) (n int, to string) {
	depth := 0
	for i, t := range toks {
		switch t := t.(type) {
		case xml.StartElement:
			if depth == 0 {
				for _, a := range t.Attr {
					if a.Name.Local == "to" && a.Name.Space == "" {
						to = a.Value
					}
				}
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				return i + 1, to
			}
		}
	}
	return len(toks), to
}

// encodeStanza writes the stanza's tokens as XML for a jabber:server
// stream: the stanza itself in the stream's namespace, with a from (our
// domain if it has none), and no xmlns attribute beside a namespaced name
// (encoding/xml would write it twice).
func encodeStanza(w io.Writer, toks []xml.Token, domain string) error {
	e := xml.NewEncoder(w)
	for i, t := range toks {
		if start, ok := t.(xml.StartElement); ok {
			attrs := make([]xml.Attr, 0, len(start.Attr)+1)
			hasFrom := false
			for _, a := range start.Attr {
				if a.Name.Space == "" && a.Name.Local == "xmlns" && (i == 0 || start.Name.Space != "") {
					continue
				}
				hasFrom = hasFrom || i == 0 && a.Name.Space == "" && a.Name.Local == "from" && a.Value != ""
				attrs = append(attrs, a)
			}
			if i == 0 {
				start.Name.Space = ""
				if !hasFrom {
					attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "from"}, Value: domain})
				}
			}
			start.Attr = attrs
			t = start
		}
		if end, ok := t.(xml.EndElement); ok && i == len(toks)-1 {
			end.Name.Space = ""
			t = end
		}
		if err := e.EncodeToken(t); err != nil {
			return err
		}
	}
	return e.Flush()
}

// sendRawS2S sends pre-rendered stanzas (presence probes), each to its
// recipient's domain, consecutive ones to one domain together.
func (c *Component) sendRawS2S(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	depth, start := 0, int64(0)
	var to, group string
	var batch []byte
	flush := func() {
		if len(batch) > 0 && !c.fed.Send(group, batch) {
			c.log.Debug("s2s: stanzas dropped", "to", group)
		}
		batch = nil
	}
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("xmpp: pre-rendered stanzas: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				start, to = off, ""
				for _, a := range t.Attr {
					if a.Name.Local == "to" && a.Name.Space == "" {
						to = a.Value
					}
				}
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				if domain := domainOf(to); domain != group {
					flush()
					group = domain
				}
				batch = append(batch, b[start:d.InputOffset()]...)
			}
		}
	}
	flush()
	return nil
}

// domainOf returns the domain of a JID as written on a stanza: what
// follows the localpart's "@" and precedes the resource's "/".
func domainOf[T string | []byte](jid T) T {
	if i := bytesIndex(jid, '/'); i >= 0 {
		jid = jid[:i]
	}
	if i := bytesIndex(jid, '@'); i >= 0 {
		jid = jid[i+1:]
	}
	return jid
}

func bytesIndex[T string | []byte](s T, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}
