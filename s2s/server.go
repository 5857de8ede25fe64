package s2s

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// Handler receives what remote servers send.
type Handler interface {
	// HandleStanza is called on an inbound stream's reader with each
	// stanza (message, presence or iq) addressed to our domain by a
	// domain authenticated on that stream; r reads the rest of it, its
	// end element included, and what is left unread is skipped. It must
	// return quickly: while it runs, the stream reads nothing else.
	HandleStanza(r xml.TokenReader, start *xml.StartElement)
	// OutboundClosed is called once for every outbound stream that
	// ends, whether it was ever ready or not.
	OutboundClosed(o *Outbound)
}

// Errors a Server returns.
var (
	// ErrUnreachable wraps the reason a remote domain cannot be reached
	// now: it could not be connected to or authenticated with, or it
	// failed a moment ago and is left alone for a while (see MinBackoff).
	ErrUnreachable = errors.New("s2s: remote domain unreachable")
	// ErrNotServing is returned while Serve is not running.
	ErrNotServing = errors.New("s2s: not serving")
)

// UnreachableError says why a domain is unreachable, and until when it is
// not tried again.
type UnreachableError struct {
	Domain string
	Until  time.Time // zero: it may be tried again at once
	Err    error
}

func (e *UnreachableError) Error() string {
	if e.Until.IsZero() {
		return fmt.Sprintf("s2s: %s unreachable: %v", e.Domain, e.Err)
	}
	return fmt.Sprintf("s2s: %s unreachable until %s: %v", e.Domain, e.Until.Format(time.TimeOnly), e.Err)
}

func (e *UnreachableError) Unwrap() []error { return []error{ErrUnreachable, e.Err} }

// Server is the XMPP server of one domain as far as other servers see it:
// it accepts their streams and opens its own to them. Send, Stream and
// Addr are safe for concurrent use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics

	listening chan struct{} // closed once the listener is up
	addr      net.Addr      // set before listening is closed

	mu      sync.Mutex // guards what follows
	serving bool
	ctx     context.Context // Serve's
	h       Handler
	wg      sync.WaitGroup // every stream's goroutines; Add only while serving
	domains map[string]*domainState
}

// domainState is what the server knows of one remote domain.
type domainState struct {
	outs     []*Outbound // live or being opened, oldest first; none if empty
	failures int         // failed attempts in a row
	retryAt  time.Time   // no attempt before
	lastErr  error
}

// maxStreamsPerDomain bounds the outbound streams to one remote domain. A
// domain gets a second one (and so on) when every stream it has is being
// written to at the moment another write wants one: a busy domain, for
// instance several delivery batches to the same server at once.
const maxStreamsPerDomain = 4

// maxDomainStates bounds the domains remembered; beyond it those with no
// stream and no backoff left are forgotten.
const maxDomainStates = 4096

// New returns a server; Serve runs it. metrics may be nil.
func New(cfg Config, log *slog.Logger, metrics *Metrics) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cfg.Domain = strings.ToLower(cfg.Domain)
	return &Server{
		cfg:       cfg,
		log:       log.With("s2s", cfg.Domain),
		metrics:   metrics,
		listening: make(chan struct{}),
		domains:   map[string]*domainState{},
	}, nil
}

// Domain is the domain this server is.
func (s *Server) Domain() string { return s.cfg.Domain }

// Listening is closed once Serve listens.
func (s *Server) Listening() <-chan struct{} { return s.listening }

// Addr is where Serve listens; nil before Listening is closed.
func (s *Server) Addr() net.Addr {
	select {
	case <-s.listening:
		return s.addr
	default:
		return nil
	}
}

// Serve listens on Config.Addr and serves remote servers, handing their
// stanzas to h, until ctx ends; then it closes every stream and returns
// nil once they are all done. It returns an error if it cannot listen.
// Call it once.
func (s *Server) Serve(ctx context.Context, h Handler) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("s2s: listen %s: %w", s.cfg.Addr, err)
	}
	s.mu.Lock()
	s.serving, s.ctx, s.h = true, ctx, h
	s.mu.Unlock()
	s.addr = ln.Addr()
	close(s.listening)
	s.log.Info("s2s listening", "addr", ln.Addr().String(), "tls", s.cfg.TLS != nil, "insecure", s.cfg.Insecure)

	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	s.accept(ctx, ln)

	s.mu.Lock()
	s.serving = false // no stream starts any more
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// accept takes connections until the listener closes.
func (s *Server) accept(ctx context.Context, ln net.Listener) {
	slots := make(chan struct{}, s.cfg.MaxInbound)
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("s2s accept", "err", err)
			if !sleepCtx(ctx, 50*time.Millisecond) {
				return
			}
			continue
		}
		select {
		case slots <- struct{}{}:
		default:
			s.metrics.refused("limit")
			s.log.Warn("inbound stream refused: too many open", "peer", conn.RemoteAddr().String(), "max", s.cfg.MaxInbound)
			_ = conn.Close()
			continue
		}
		if !s.track(func() {
			defer func() { <-slots }()
			s.serveInbound(ctx, conn)
		}) {
			_ = conn.Close()
			return
		}
	}
}

// track runs f on a goroutine the server waits for, unless it is no
// longer serving (then it reports false).
func (s *Server) track(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.serving {
		return false
	}
	s.wg.Go(f)
	return true
}

// Send queues one or more whole stanzas for domain's stream, opening it if
// need be. It never blocks: it reports false, and drops the stanzas, when
// the domain is unreachable or its queue is full.
func (s *Server) Send(domain string, stanzas []byte) bool {
	o, err := s.outbound(domain)
	if err != nil {
		s.metrics.dropped()
		return false
	}
	select {
	case o.queue <- stanzas:
		return true
	default:
		s.metrics.dropped()
		return false
	}
}

// Stream returns domain's outbound stream once it is ready (authenticated),
// opening it if need be. The error wraps ErrUnreachable when the domain
// could not be reached or is left alone after failing.
func (s *Server) Stream(ctx context.Context, domain string) (*Outbound, error) {
	o, err := s.outbound(domain)
	if err != nil {
		return nil, err
	}
	select {
	case <-o.ready:
		return o, nil
	case <-o.done:
		select {
		case <-o.ready: // ready, and ended since
			return nil, o.err
		default:
			return nil, &UnreachableError{Domain: o.domain, Err: o.err}
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// outbound returns one of domain's outbound streams, starting one if there
// is none and the domain is not backing off. With several, it returns the
// ready one with the fewest writes under way; when every one is being
// written to, it starts another (up to maxStreamsPerDomain) for the writes
// to come, and meanwhile returns the least busy.
func (s *Server) outbound(domain string) (*Outbound, error) {
	domain = strings.ToLower(domain)
	if domain == s.cfg.Domain || domain == "" {
		return nil, &UnreachableError{Domain: domain, Err: errors.New("no stream to our own domain, nor to none")}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.serving {
		return nil, ErrNotServing
	}
	st := s.domains[domain]
	if st == nil {
		s.prune()
		st = &domainState{}
		s.domains[domain] = st
	}
	if best := leastBusy(st.outs); best != nil {
		if best.writers.Load() > 0 && len(st.outs) < maxStreamsPerDomain && !anyOpening(st.outs) && !time.Now().Before(st.retryAt) {
			s.startOutbound(st, domain)
		}
		return best, nil
	}
	if len(st.outs) > 0 {
		return st.outs[0], nil // none ready yet: the first will be
	}
	if now := time.Now(); now.Before(st.retryAt) {
		return nil, &UnreachableError{Domain: domain, Until: st.retryAt, Err: st.lastErr}
	}
	return s.startOutbound(st, domain), nil
}

// startOutbound opens another stream to domain; s.mu is held.
func (s *Server) startOutbound(st *domainState, domain string) *Outbound {
	o := newOutbound(s, domain)
	st.outs = append(st.outs, o)
	s.wg.Go(func() { o.run(s.ctx) })
	return o
}

// leastBusy is the ready stream of outs with the fewest writes under way,
// or nil if none is ready.
func leastBusy(outs []*Outbound) *Outbound {
	var best *Outbound
	for _, o := range outs {
		if !o.isReady() {
			continue
		}
		if best == nil || o.writers.Load() < best.writers.Load() {
			best = o
		}
	}
	return best
}

// anyOpening reports whether one of outs is still being negotiated.
func anyOpening(outs []*Outbound) bool {
	for _, o := range outs {
		if !o.isReady() {
			return true
		}
	}
	return false
}

// prune forgets domains with nothing left to remember; s.mu is held.
func (s *Server) prune() {
	if len(s.domains) < maxDomainStates {
		return
	}
	now := time.Now()
	for d, st := range s.domains {
		if len(st.outs) == 0 && now.After(st.retryAt) {
			delete(s.domains, d)
		}
	}
}

// outboundEnded records how o ended: a stream that never became ready
// puts its domain in backoff.
func (s *Server) outboundEnded(o *Outbound, wasReady bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.domains[o.domain]
	if st == nil {
		return
	}
	if i := slices.Index(st.outs, o); i >= 0 {
		st.outs = slices.Delete(st.outs, i, i+1)
	}
	if wasReady {
		st.failures, st.retryAt, st.lastErr = 0, time.Time{}, nil
		return
	}
	st.failures++
	wait := s.cfg.MinBackoff << min(st.failures-1, 20)
	st.retryAt, st.lastErr = time.Now().Add(min(wait, s.cfg.MaxBackoff)), err
}

// heardFrom ends domain's backoff: it has just opened a stream to us, so
// it is up again.
func (s *Server) heardFrom(domain string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.domains[strings.ToLower(domain)]; st != nil {
		st.failures, st.retryAt = 0, time.Time{}
	}
}

// handler returns the handler Serve was given.
func (s *Server) handler() Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.h
}

// sleepCtx waits for d and reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
