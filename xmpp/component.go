package xmpp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"

	"starling.dev/starling/fanout"
)

// ErrNotConnected is returned by DeliverBatch while no component connection
// is up; the batch stays in JetStream and is retried.
var ErrNotConnected = errors.New("xmpp: component not connected")

// Config configures a Component.
type Config struct {
	// Domain is the component's domain, e.g. microblog.example.org. Required.
	Domain string
	// Addr is the XMPP server's component port (host:port). Required.
	Addr string
	// Secret is the component secret shared with the server. Required.
	Secret string
	// PingTo is the JID the delivery round-trip pings go to; empty means
	// the parent domain of Domain (microblog.example.org → example.org),
	// which is the XMPP server's own host in the usual setup.
	PingTo string
	// PingTimeout bounds the wait for the answer to a batch's ping; zero
	// means 10 s.
	PingTimeout time.Duration
	// WriteTimeout bounds one batch's socket write; zero means 10 s.
	WriteTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnects; zero
	// means 250 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
	// ProbeRate bounds the presence probes sent after each connect, per
	// second; zero means 100.
	ProbeRate float64
	// CommandRate and CommandBurst are each JID's command allowance: a
	// burst of CommandBurst, refilled at CommandRate per second; zero means
	// 1 per second and a burst of 10.
	CommandRate  float64
	CommandBurst int
	// MaxFollowing caps how many authors one JID may follow; zero means
	// 1000.
	MaxFollowing int
	// QueueDelay is how much of the server's routing time later pages of a
	// big fanout may queue ahead of a new first page; zero means 20 ms.
	QueueDelay time.Duration
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if c.Domain == "" || c.Addr == "" || c.Secret == "" {
		return errors.New("xmpp: Domain, Addr and Secret are required")
	}
	if _, err := jid.Parse(c.Domain); err != nil {
		return fmt.Errorf("xmpp: domain %q: %w", c.Domain, err)
	}
	if c.PingTimeout < 0 || c.WriteTimeout < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0 {
		return errors.New("xmpp: durations must not be negative")
	}
	if c.ProbeRate < 0 || c.CommandRate < 0 || c.CommandBurst < 0 || c.MaxFollowing < 0 || c.QueueDelay < 0 {
		return errors.New("xmpp: rates and limits must not be negative")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.PingTo == "" {
		if _, parent, ok := strings.Cut(c.Domain, "."); ok {
			c.PingTo = parent
		} else {
			c.PingTo = c.Domain
		}
	}
	if c.PingTimeout == 0 {
		c.PingTimeout = 10 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 250 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.ProbeRate == 0 {
		c.ProbeRate = 100
	}
	if c.CommandRate == 0 {
		c.CommandRate = 1
	}
	if c.CommandBurst == 0 {
		c.CommandBurst = 10
	}
	if c.QueueDelay == 0 {
		c.QueueDelay = 20 * time.Millisecond
	}
	return c
}

// Component is the XEP-0114 connection to the XMPP server. Run keeps it
// connected; DeliverBatch and WaitReady are safe for concurrent use.
type Component struct {
	cfg     Config
	domain  jid.JID
	store   Store
	im      *IM
	limits  *limiter
	metrics *Metrics
	log     *slog.Logger
	pings   *pings
	pacer   *pacer
	// pingHead is the delivery ping up to its id, rendered once.
	pingHead []byte

	mu    sync.Mutex // guards live and ready
	live  *link
	ready chan struct{} // closed while live != nil
}

var _ fanout.StanzaSender = (*Component)(nil)

// link is one negotiated connection.
type link struct {
	sess *xmpp.Session
	conn net.Conn
	w    *bufio.Writer // raw delivery writes; used only under the session's write lock
}

// New returns a component; call Run to connect it. metrics may be nil.
func New(store Store, metrics *Metrics, log *slog.Logger, cfg Config) (*Component, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Component{
		cfg:      cfg,
		domain:   jid.MustParse(cfg.Domain),
		store:    store,
		im:       NewIM(cfg.Domain, store, cfg.MaxFollowing, log),
		limits:   newLimiter(cfg.CommandRate, cfg.CommandBurst),
		metrics:  metrics,
		log:      log,
		pings:    newPings(),
		pacer:    newPacer(cfg.QueueDelay, 100, 2000),
		ready:    make(chan struct{}),
		pingHead: renderPingHead(cfg.Domain, cfg.PingTo),
	}, nil
}

// Run connects and reconnects with backoff until ctx ends; then it closes the
// stream politely and returns nil.
func (c *Component) Run(ctx context.Context) error {
	backoff := c.cfg.MinBackoff
	for {
		start := time.Now()
		err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > 30*time.Second {
			backoff = c.cfg.MinBackoff
		}
		c.log.Warn("component link down; reconnecting", "addr", c.cfg.Addr, "err", err, "in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

// session dials, negotiates and serves one connection until it ends.
func (c *Component) session(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", c.cfg.Addr)
	if err != nil {
		return fmt.Errorf("xmpp: dial %s: %w", c.cfg.Addr, err)
	}
	defer conn.Close()
	sess, err := component.NewSession(dctx, c.domain, []byte(c.cfg.Secret), conn)
	if err != nil {
		return fmt.Errorf("xmpp: component handshake as %s: %w", c.cfg.Domain, err)
	}
	l := &link{sess: sess, conn: conn, w: bufio.NewWriterSize(conn, 64<<10)}
	c.up(l)
	defer c.down(l)
	c.log.Info("component connected", "domain", c.cfg.Domain, "addr", c.cfg.Addr)

	stop := context.AfterFunc(ctx, func() {
		_ = sess.Close()
		_ = conn.Close()
	})
	defer stop()

	// The probes belong to this connection: they end with it.
	pctx, cancelProbes := context.WithCancel(ctx)
	probing := make(chan struct{})
	go func() {
		defer close(probing)
		c.probeAll(pctx, func(b []byte) error { return c.writeRaw(l, b) })
	}()
	defer func() {
		cancelProbes()
		<-probing
	}()
	return sess.Serve(c.handler())
}

func (c *Component) up(l *link) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live = l
	close(c.ready)
	c.metrics.up(true)
}

func (c *Component) down(l *link) {
	c.mu.Lock()
	if c.live == l {
		c.live = nil
		c.ready = make(chan struct{})
		c.metrics.up(false)
	}
	c.mu.Unlock()
	c.pings.failAll(ErrNotConnected)
}

func (c *Component) current() *link {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live
}

// WaitReady blocks until a connection is up or ctx ends.
func (c *Component) WaitReady(ctx context.Context) error {
	c.mu.Lock()
	ready := c.ready
	c.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
	}
}

// Connected reports whether a connection is up (for readiness checks).
func (c *Component) Connected() bool { return c.current() != nil }

// DeliverBatch writes one chat message per recipient, each chunk of them
// followed by an XEP-0199 ping to the server, and returns when the server has
// answered every ping. The server handles a component stream in order, so
// an answer means every message before it has been routed; a flush alone
// would not survive a server crash. A small post goes out at once; big
// batches are paced (see pacer), so that they never fill the server's queue
// ahead of someone else's small post.
func (c *Component) DeliverBatch(ctx context.Context, b fanout.Batch) error {
	l := c.current()
	if l == nil {
		return ErrNotConnected
	}
	d := NewDelivery(c.cfg.Domain, b.Post)
	// A small author's post (a first page of a few stanzas) goes out at
	// once; everything larger, a celebrity's first page included, is paced.
	paced := b.Page > 0 || b.Len() > unpacedBatch
	size := fanout.BatchSize
	if paced {
		size = c.pacer.chunk()
	}
	answers := make(chan error, b.Len()/size+1)
	var ids []string
	err := b.Chunks(size, func(part fanout.Batch) error {
		n := part.Len()
		if paced {
			if err := c.pacer.acquire(ctx, n); err != nil {
				return err
			}
		}
		id := c.pings.add(func(err error) {
			if paced {
				c.pacer.release(n, err == nil)
			}
			answers <- err
		})
		ids = append(ids, id)
		err := c.locked(l, func(w *bufio.Writer) error {
			if err := part.Recipients(func(jid []byte) error { return d.WriteTo(w, jid) }); err != nil {
				return err
			}
			w.Write(c.pingHead)
			w.WriteString(id)
			_, err := w.WriteString(`"><ping xmlns="urn:xmpp:ping"/></iq>`)
			return err
		})
		if err != nil {
			c.pings.resolve(id, err)
			return fmt.Errorf("xmpp: write delivery: %w", err)
		}
		return nil
	})
	if err != nil {
		c.abandon(ids, err)
		return err
	}
	t := time.NewTimer(c.cfg.PingTimeout)
	defer t.Stop()
	for range ids {
		select {
		case err := <-answers:
			if err != nil {
				c.abandon(ids, err)
				return err
			}
		case <-t.C:
			err := fmt.Errorf("xmpp: no answer to delivery pings after %s", c.cfg.PingTimeout)
			c.abandon(ids, err)
			return err
		case <-ctx.Done():
			c.abandon(ids, ctx.Err())
			return ctx.Err()
		}
	}
	return nil
}

// unpacedBatch is the largest first page written without pacing: a small
// author's whole post.
const unpacedBatch = 50

// abandon resolves the batch's pings still waiting, so that their window
// is returned; the batch will be sent again.
func (c *Component) abandon(ids []string, err error) {
	for _, id := range ids {
		c.pings.resolve(id, err)
	}
}

// writeRaw writes pre-rendered stanzas.
func (c *Component) writeRaw(l *link, b []byte) error {
	return c.locked(l, func(w *bufio.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// locked runs write with the connection's buffered writer under the
// session's write lock, so that raw bytes never interleave with what mellium
// writes (the handler's replies), and flushes once. A failed or partial
// write leaves the stream unusable, so the connection is closed and Run
// reconnects.
func (c *Component) locked(l *link, write func(*bufio.Writer) error) error {
	tw := l.sess.TokenWriter()
	defer tw.Close()
	err := tw.Flush()
	if err == nil {
		_ = l.conn.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
		err = write(l.w)
		if err == nil {
			err = l.w.Flush()
		}
		_ = l.conn.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		_ = l.conn.Close()
	}
	return err
}

// renderPingHead renders the delivery ping up to the value of its id.
func renderPingHead(from, to string) []byte {
	b := append([]byte(nil), `<iq type="get" from="`...)
	b = appendAttr(b, from)
	b = append(b, `" to="`...)
	b = appendAttr(b, to)
	return append(b, `" id="`...)
}
