package xmpp

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"mellium.im/xmpp"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/stream"

	"starling.dev/starling/fanout"
)

// errNotConnected is returned by DeliverBatch while no component connection
// is up; the batch stays in JetStream and is retried.
var errNotConnected = errors.New("xmpp: component not connected")

const (
	// dialTimeout bounds the dial and the XEP-0114 handshake.
	dialTimeout = 10 * time.Second
	// healthyLink is how long a connection must have lasted for the next
	// reconnect to start again from MinBackoff.
	healthyLink = 30 * time.Second
	// writeBuffer is the delivery writer's buffer: several chunks of
	// stanzas, so that one chunk is usually one write.
	writeBuffer = 64 << 10
)

// link is one negotiated connection.
type link struct {
	sess *xmpp.Session
	conn net.Conn
	w    *bufio.Writer // raw delivery writes; used only under the session's write lock
	gone chan struct{} // closed when the link is withdrawn (down)
	id   string        // names the link as the holder of the probe lease
}

var _ fanout.LinkWatcher = (*Component)(nil)

// Run keeps Config.Connections connections up, each reconnecting with its
// own backoff, until ctx ends; then it closes the streams politely and
// returns nil. In s2s mode (WithFederation) it serves the domain instead,
// and fails if it cannot listen.
func (c *Component) Run(ctx context.Context) error {
	if c.fed != nil {
		return c.runS2S(ctx)
	}
	// The handlers' workers (work.go) live as long as Run.
	defer c.startWork(ctx)()
	var wg sync.WaitGroup
	wg.Go(func() { c.expirePings(ctx) })
	for i := range c.cfg.Connections {
		wg.Go(func() { c.keep(ctx, i) })
	}
	wg.Wait()
	return nil
}

// errPingTimeout fails a chunk whose ping went unanswered for PingTimeout.
var errPingTimeout = errors.New("xmpp: no answer to a delivery ping")

// errPingRefused fails a chunk whose ping the server answered with an
// error: a server that is going down bounces what it still holds.
var errPingRefused = errors.New("xmpp: the server answered a delivery ping with an error")

// expirePings fails, until ctx ends, every delivery ping left unanswered
// for PingTimeout, whatever its batch is doing meanwhile (waiting for room
// in the pacer's window, writing, or waiting for its answers).
func (c *Component) expirePings(ctx context.Context) {
	t := time.NewTicker(max(c.cfg.PingTimeout/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if n := c.pings.expire(now.Add(-c.cfg.PingTimeout), errPingTimeout); n > 0 {
				c.log.Warn("delivery pings unanswered; their chunks will be sent again", "pings", n, "after", c.cfg.PingTimeout)
			}
		}
	}
}

// keep holds connection number i up until ctx ends. Against a server that
// allows one connection per component (Prosody), the one that loses the
// race keeps retrying, so it takes over within MaxBackoff when the holder
// goes away, whichever replica the holder was.
func (c *Component) keep(ctx context.Context, i int) {
	backoff := c.cfg.MinBackoff
	for {
		start := time.Now()
		err := c.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > healthyLink {
			backoff = c.cfg.MinBackoff
		}
		if isConflict(err) {
			c.log.Info("the server keeps another connection for this component; standing by", "addr", c.cfg.Addr, "connection", i, "retry_in", backoff)
		} else {
			c.log.Warn("component link down; reconnecting", "addr", c.cfg.Addr, "connection", i, "err", err, "in", backoff)
		}
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

// isConflict reports whether err is the server refusing a connection
// because another one holds the component (Prosody's default).
func isConflict(err error) bool {
	var se stream.Error
	return errors.As(err, &se) && se.Err == "conflict"
}

// sleep waits for d and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// session dials, negotiates and serves one connection until it ends.
func (c *Component) session(ctx context.Context) error {
	l, endDial, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer endDial()
	defer l.conn.Close()
	c.up(l)
	defer c.down(l)
	c.log.Info("component connected", "domain", c.cfg.Domain, "addr", c.cfg.Addr)

	stop := context.AfterFunc(ctx, func() {
		_ = l.sess.Close()
		_ = l.conn.Close()
	})
	defer stop()
	stopProbes := c.probe(ctx, l)
	defer stopProbes()
	return l.sess.Serve(c.handler())
}

// dial connects to the server's component port and logs in. endDial
// releases the dial's context; call it when the connection is done, not
// before: mellium watches the handshake's context and, if it ends just as
// the handshake returns, moves the connection's deadlines into the past and
// back, which can fail the first reads and writes of a healthy stream.
func (c *Component) dial(ctx context.Context) (l *link, endDial func(), err error) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", c.cfg.Addr)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("xmpp: dial %s: %w", c.cfg.Addr, err)
	}
	sess, err := component.NewSession(dctx, c.domain, []byte(c.cfg.Secret), conn)
	if err != nil {
		cancel()
		_ = conn.Close()
		return nil, nil, fmt.Errorf("xmpp: component handshake as %s: %w", c.cfg.Domain, err)
	}
	return &link{sess: sess, conn: conn, w: bufio.NewWriterSize(conn, writeBuffer), gone: make(chan struct{}), id: rand.Text()}, cancel, nil
}

// probe starts the presence probes of connection l and returns the
// function that stops them, waits for them and releases the probe lease
// (if l took it): they belong to the connection and end with it.
func (c *Component) probe(ctx context.Context, l *link) (stop func()) {
	return c.probeWith(ctx, l.id, func(b []byte) error { return c.writeRaw(l, b) })
}

// probeWith starts the presence probes, as the holder of the probe lease,
// written by write, and returns the function that stops them, waits for
// them and releases the lease.
func (c *Component) probeWith(ctx context.Context, holder string, write func([]byte) error) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.probeAll(ctx, holder, write)
	}()
	return func() {
		cancel()
		<-done
		c.releaseProbeLease(holder)
	}
}

// up adds l to the live connections.
func (c *Component) up(l *link) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live = append(c.live, l)
	if len(c.live) == 1 {
		close(c.ready)
		c.gone = make(chan struct{})
	}
	c.metrics.up(len(c.live))
}

// down withdraws l from the live connections, tells LinkUp's callers when
// it was the last, and fails every ping written on it: those answers will
// never come. It is called once per link.
func (c *Component) down(l *link) {
	c.mu.Lock()
	if i := slices.Index(c.live, l); i >= 0 {
		c.live = slices.Delete(c.live, i, i+1)
		if len(c.live) == 0 {
			c.ready = make(chan struct{})
			close(c.gone)
		}
		c.metrics.down(len(c.live))
	}
	c.mu.Unlock()
	close(l.gone)
	c.pings.failLink(l, errNotConnected)
}

// current returns a live connection, taking them in turn, or nil.
func (c *Component) current() *link {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.live) == 0 {
		return nil
	}
	c.turn++
	return c.live[c.turn%len(c.live)]
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
		return fmt.Errorf("%w: %w", errNotConnected, ctx.Err())
	}
}

// LinkUp blocks until a connection is up or ctx ends, and returns a
// channel closed when no connection is left (fanout.LinkWatcher: the
// pipeline pulls deliveries only while a link is up).
func (c *Component) LinkUp(ctx context.Context) (<-chan struct{}, error) {
	for {
		if err := c.WaitReady(ctx); err != nil {
			return nil, err
		}
		c.mu.Lock()
		up, gone := len(c.live) > 0, c.gone
		c.mu.Unlock()
		if up {
			return gone, nil
		}
		// Gone between the two looks: wait for the next one.
	}
}

// Connected reports whether a connection is up (for readiness checks).
func (c *Component) Connected() bool { return c.Links() > 0 }

// Links is how many connections are up.
func (c *Component) Links() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.live)
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
// writes (the handlers' replies), and flushes once. A failed or partial
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
