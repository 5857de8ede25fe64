package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"starling.dev/starling/accounts"
	"starling.dev/starling/internal/health"
	"starling.dev/starling/subscribers"
)

// NewLogger returns the process's structured logger.
func NewLogger(level string) *slog.Logger {
	l, err := ParseLevel(level)
	if err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// stores are the two Redis stores over one client. The value serves as the
// component's store too: it has the accounts' methods and the graph's.
type stores struct {
	*accountStore
	*graphStore
}

// Aliases give the embedded stores distinct field names.
type (
	accountStore = accounts.RedisStore
	graphStore   = subscribers.RedisStore
)

// openStores builds the stores over rdb; recentPosts zero means the
// accounts package's default, graphOpts configure the graph (follower
// shards). Nothing is read from Redis yet: checkStores does that.
func openStores(rdb redis.UniversalClient, prefix string, recentPosts int, graphOpts ...subscribers.Option) (*stores, error) {
	graph := subscribers.NewRedisStore(rdb, prefix, graphOpts...)
	acc, err := accounts.NewRedisStore(rdb, graph, accounts.RedisConfig{Prefix: prefix, RecentPosts: recentPosts})
	if err != nil {
		return nil, err
	}
	return &stores{acc, graph}, nil
}

// startCheck bounds the follower shard check at start.
const startCheck = 5 * time.Second

// checkStores makes sure at start that the data in Redis was written with
// this process's follower shard count (the first process records it), and
// refuses to start when it was not. When Redis does not answer, the
// process starts anyway (it serves /readyz meanwhile) and the graph makes
// the check before its first read or write of follower sets
// (subscribers.WithShardCheck).
func checkStores(ctx context.Context, st *stores, shards int, log *slog.Logger) error {
	cctx, cancel := context.WithTimeout(ctx, startCheck)
	defer cancel()
	err := st.CheckFollowerShards(cctx)
	var mismatch *subscribers.ShardCountError
	switch {
	case errors.As(err, &mismatch):
		return fmt.Errorf("%w. Start every gateway and API with STARLING_FOLLOWER_SHARDS=%d (flag -follower-shards), "+
			"the count the data was written with; no tool moves followers between shard counts", mismatch, mismatch.Recorded)
	case err != nil:
		log.Warn("follower shard count not checked yet; it will be before the first use of a follower set", "err", err)
	case shards > 1:
		log.Info("followers spread over shards", "follower_shards", shards)
	}
	return nil
}

// clusterStateReload is how often a Redis Cluster client refreshes its map
// of slots to masters.
const clusterStateReload = time.Second

// openRedis returns a client for one server, or for a Redis Cluster when
// cluster is set (url then lists seed nodes: redis://h1:p1?addr=h2:p2).
// The stores keep every script and multi-key command within one hash slot,
// so they work on either.
func openRedis(url string, cluster bool) (redis.UniversalClient, error) {
	if cluster {
		opts, err := redis.ParseClusterURL(url)
		if err != nil {
			return nil, fmt.Errorf("redis cluster url: %w", err)
		}
		// go-redis reloads the slot map every 60 s by default and, after a
		// failover, dials the dead master until then: a replica promoted in
		// ~2 s would stall the pipeline for a minute.
		opts.ClusterStateReloadInterval = clusterStateReload
		// A dead master refuses connections; go-redis dials it 5 times,
		// 100 ms apart, on each of a command's 4 attempts, so a command
		// that meets it waits ~2 s before it fails (the pipeline then
		// retries the message anyway), and the first command after a
		// failover, routed on the old map, waited 0.9 s. With one dial per
		// attempt either fails in milliseconds (internal/chaos,
		// TestRedisClusterMasterFailover). A dialer_retries in the URL wins.
		if opts.DialerRetries == 0 {
			opts.DialerRetries = 1
		}
		return redis.NewClusterClient(opts), nil
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	return redis.NewClient(opts), nil
}

// startEmbeddedNATS runs the real NATS server in-process with JetStream on
// disk, for single-machine deployments and `make run`. A non-empty token is
// required of every client.
func startEmbeddedNATS(addr, dataDir, token string, log *slog.Logger) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("embedded nats addr %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("embedded nats addr %q: %w", addr, err)
	}
	dir, err := filepath.Abs(filepath.Join(dataDir, "jetstream"))
	if err != nil {
		return nil, err
	}
	s, err := server.NewServer(&server.Options{
		ServerName: "starling-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
		// Empty: no authentication (the server's default).
		Authorization: token,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready on %s (is the port taken?)", addr)
	}
	log.Info("embedded NATS with JetStream started", "addr", s.ClientURL(), "store", dir, "token_required", token != "")
	return s, nil
}

// natsDrainTimeout bounds a NATS drain at shutdown: nats.go gives up after
// it, and closeInfra waits a little longer for the connection to close.
const natsDrainTimeout = 5 * time.Second

// natsConn is a NATS connection and a channel closed once the connection
// is, so that shutdown can wait for a drain to finish.
type natsConn struct {
	*nats.Conn
	closed <-chan struct{}
}

// connectNATS connects to url, which may list several servers of a cluster
// comma-separated (nats.go picks one and fails over to the others, and
// learns the rest of the cluster from them), with token when it is not
// empty.
func connectNATS(url, name, token string, log *slog.Logger) (*natsConn, error) {
	closed := make(chan struct{})
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.Token(token), // "" sends none
		// A refused token is retried like any failure (nats.go would give
		// up on the second refusal), so that a process waits for a token
		// being rolled out instead of never reconnecting.
		nats.IgnoreAuthErrorAbort(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DrainTimeout(natsDrainTimeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("NATS disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("NATS reconnected", "url", c.ConnectedUrl())
		}),
		// Such as an authorization violation (a wrong or missing token).
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("NATS error", "err", err)
		}),
		// nats.go calls this once, however the connection ends.
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
	)
	if err != nil {
		return nil, fmt.Errorf("nats connect %s: %w", url, err)
	}
	return &natsConn{Conn: nc, closed: closed}, nil
}

// drain lets subscriptions finish and pending publishes flush, then waits
// for the connection to close, at most a second beyond natsDrainTimeout.
func (c *natsConn) drain(log *slog.Logger) {
	if err := c.Drain(); err != nil {
		// Closed already, or reconnecting (nats.go then closes it).
		log.Debug("nats drain", "err", err)
		c.Close()
		return
	}
	t := time.NewTimer(natsDrainTimeout + time.Second)
	defer t.Stop()
	select {
	case <-c.closed:
	case <-t.C:
		log.Warn("NATS drain did not finish; closing the connection")
		c.Close()
	}
}

// infraConfig says which infrastructure a process opens.
type infraConfig struct {
	redisURL     string
	redisCluster bool
	// natsURL may list several servers, comma-separated.
	natsURL string
	// natsToken, when set, authenticates the connection, and the embedded
	// server requires it.
	natsToken string
	// embedded starts a NATS server in-process, listening on embeddedAddr
	// with JetStream under dataDir, and connects to it instead of natsURL.
	embedded              bool
	embeddedAddr, dataDir string
	clientName            string // the NATS connection's name
	jsOpts                []jetstream.JetStreamOpt
}

// infra is the infrastructure a process holds: a Redis client, a NATS
// connection (to an embedded server, for the gateway's single-machine
// mode) and JetStream over it. openInfra opens it; close releases it.
type infra struct {
	log     *slog.Logger
	rdb     redis.UniversalClient
	ns      *server.Server // nil unless embedded
	nc      *natsConn
	js      jetstream.JetStream
	natsURL string // what nc connected to
}

// openInfra opens what cfg names; on error it releases what it opened.
func openInfra(cfg infraConfig, log *slog.Logger) (_ *infra, err error) {
	in := &infra{log: log, natsURL: cfg.natsURL}
	defer func() {
		if err != nil {
			in.close()
		}
	}()
	if in.rdb, err = openRedis(cfg.redisURL, cfg.redisCluster); err != nil {
		return nil, err
	}
	if cfg.embedded {
		if in.ns, err = startEmbeddedNATS(cfg.embeddedAddr, cfg.dataDir, cfg.natsToken, log); err != nil {
			return nil, err
		}
		in.natsURL = in.ns.ClientURL()
	}
	if in.nc, err = connectNATS(in.natsURL, cfg.clientName, cfg.natsToken, log); err != nil {
		return nil, err
	}
	if in.js, err = jetstream.New(in.nc.Conn, cfg.jsOpts...); err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return in, nil
}

// close releases the infrastructure in order, once everything using it has
// stopped: drain NATS, stop the embedded server, close Redis. It accepts a
// partly opened infra.
func (in *infra) close() {
	if in.nc != nil {
		in.nc.drain(in.log)
	}
	if in.ns != nil {
		in.ns.Shutdown()
		in.ns.WaitForShutdown()
	}
	if in.rdb != nil {
		if err := in.rdb.Close(); err != nil {
			in.log.Debug("redis close", "err", err)
		}
	}
}

// readiness is the named checks of the infrastructure, for /readyz.
func (in *infra) readiness() []health.Check {
	return []health.Check{
		{Name: "nats", Func: natsReady(in.nc.Conn)},
		{Name: "redis", Func: redisReady(in.rdb)},
	}
}

// serveHTTP serves srv on ln until ctx ends, then stops accepting and lets
// the requests in flight finish for up to grace before cutting them off.
func serveHTTP(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served: // Serve failed: nobody else shuts srv down
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		err = errors.Join(err, srv.Close())
	}
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// natsReady is the readiness check of a NATS connection.
func natsReady(nc *nats.Conn) func(context.Context) error {
	return func(context.Context) error {
		if !nc.IsConnected() {
			return fmt.Errorf("nats: %s", nc.Status())
		}
		return nil
	}
}

// redisReady is the readiness check of a Redis client.
func redisReady(rdb redis.UniversalClient) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		return nil
	}
}

// retry calls f until it succeeds or ctx ends, waiting between attempts.
func retry(ctx context.Context, log *slog.Logger, what string, f func(context.Context) error) error {
	wait := 100 * time.Millisecond
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		log.Warn(what+" failed; retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}
