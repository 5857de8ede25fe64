package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"starling.dev/starling/fanout"
	"starling.dev/starling/internal/health"
	"starling.dev/starling/internal/pingrelay"
	"starling.dev/starling/s2s"
	"starling.dev/starling/subscribers"
	"starling.dev/starling/xmpp"
)

// GatewayHooks lets a caller observe the gateway; every field may be nil.
type GatewayHooks struct {
	// MetricsListening is called with the ops listener's address once it
	// listens, so that tests can use port 0.
	MetricsListening func(addr string)
}

// opsGrace bounds how long the ops listener waits for scrapes and probes in
// flight at shutdown.
const opsGrace = 5 * time.Second

// RunGateway runs the gateway until ctx ends, then shuts down in order:
// stop serving ops requests and consuming, close the component stream,
// drain NATS, stop the embedded server, close Redis.
func RunGateway(ctx context.Context, cfg Gateway, log *slog.Logger, hooks GatewayHooks) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	in, err := openInfra(cfg.infraConfig(), log)
	if err != nil {
		return err
	}
	defer in.close() // last: nothing uses NATS or Redis any more
	gw, err := buildGateway(ctx, cfg, in, log)
	if err != nil {
		return err
	}
	err = gw.serve(ctx, hooks)
	log.Info("gateway stopped")
	return err
}

// infraConfig is the gateway's infrastructure: an embedded NATS server
// when no NATS URL is configured.
func (c Gateway) infraConfig() infraConfig {
	return infraConfig{
		redisURL: c.RedisURL, redisCluster: c.RedisCluster, natsURL: c.NATSURL, natsToken: c.NATSToken,
		embedded: c.NATSURL == "", embeddedAddr: c.EmbeddedNATSAddr, dataDir: c.DataDir,
		clientName: "starling-gateway",
		jsOpts: []jetstream.JetStreamOpt{
			jetstream.WithPublishAsyncMaxPending(256),
			jetstream.WithPublishAsyncTimeout(10 * time.Second),
		},
	}
}

// The component takes the probe lease from the shared store, so that
// replicas reconnecting together probe once; its delivery stages pull only
// while its link is up (fanout.LinkWatcher).
var (
	_ xmpp.ProbeLeaser   = (*stores)(nil)
	_ fanout.LinkWatcher = (*xmpp.Component)(nil)
)

// gateway is the gateway's parts, built over its infrastructure.
type gateway struct {
	cfg   Gateway
	log   *slog.Logger
	in    *infra
	comp  *xmpp.Component
	relay *pingrelay.Relay
	pipe  *fanout.Pipeline
	ops   http.Handler
}

// buildGateway builds the stores, the XMPP component, the delivery
// pipeline and the ops handler; nothing runs yet.
func buildGateway(ctx context.Context, cfg Gateway, in *infra, log *slog.Logger) (*gateway, error) {
	reg := newRegistry()
	metrics := fanout.NewMetrics(reg)
	st, err := openStores(in.rdb, cfg.RedisPrefix, cfg.PostHistory, subscribers.WithFollowerShards(cfg.FollowerShards), subscribers.WithShardCheck())
	if err != nil {
		return nil, err
	}
	if err := checkStores(ctx, st, cfg.FollowerShards, log); err != nil {
		return nil, err
	}
	// Answers to this gateway's pings may arrive on another replica's
	// connection, and theirs on ours: they travel over NATS.
	relay := pingrelay.New(in.nc.Conn, log)
	mode, err := modeOption(cfg, reg, log)
	if err != nil {
		return nil, err
	}
	comp, err := xmpp.New(st, xmpp.NewMetrics(reg), log, xmpp.Config{
		Domain: cfg.Domain, Addr: cfg.XMPPAddr, Secret: cfg.XMPPSecret, PingTo: cfg.XMPPPingTo,
		ProbeRate: cfg.ProbeRate, CommandRate: cfg.CommandRate, CommandBurst: cfg.CommandBurst,
		MaxFollowing: cfg.MaxFollowing, Payload: xmpp.Payload(cfg.Payload), Connections: cfg.XMPPConnections,
		QueueDelay: cfg.QueueDelay,
	}, mode, xmpp.WithRelay(relay), xmpp.WithMaxTrack(cfg.MaxTrack),
		// Verified JIDs post by IM as the API posts: same rules, a durable
		// publish to POSTS, the record in the history.
		xmpp.WithPosting(fanout.NewPostPublisher(in.js), xmpp.PostConfig{MaxPostChars: cfg.MaxPostChars}))
	if err != nil {
		return nil, err
	}
	track := fanout.WithTracking(st.graphStore, st.accountStore) // resumable fanouts, retractions
	// Trackers of a post's words and its mentioned users' JIDs are walked
	// with the followers.
	fan := fanout.NewFanout(st.graphStore, fanout.NewJetStreamSink(in.js), metrics, track, fanout.WithAudience(st.accountStore))
	// A redelivered batch skips the recipients the server confirmed.
	send := fanout.NewSend(comp, 0, metrics, track, fanout.WithBatchProgress(st.graphStore))
	// The pipeline records every post it fans out: the API's own record
	// may have failed, and the history must hold what followers get.
	pipe, err := fanout.NewPipeline(in.js, fan, send, st.accountStore, log, metrics, cfg.consumerConfig())
	if err != nil {
		return nil, err
	}
	ops, err := opsHandler(reg, comp, in, log)
	if err != nil {
		return nil, err
	}
	return &gateway{cfg: cfg, log: log, in: in, comp: comp, relay: relay, pipe: pipe, ops: ops}, nil
}

// modeOption is the XMPP mode as a component option: in s2s mode the
// gateway federates through its own s2s server (its certificate loaded
// here); in component mode nothing changes.
func modeOption(cfg Gateway, reg prometheus.Registerer, log *slog.Logger) (xmpp.Option, error) {
	if cfg.XMPPMode != ModeS2S {
		return func(*xmpp.Component) {}, nil
	}
	var tlsConf *tls.Config
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("STARLING_TLS_CERT, STARLING_TLS_KEY: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	fed, err := s2s.New(s2s.Config{
		Domain: cfg.Domain, Addr: cfg.S2SAddr, Secret: cfg.S2SSecret, TLS: tlsConf,
		Insecure: cfg.S2SInsecure, Hosts: cfg.S2SHosts,
	}, log, s2s.NewMetrics(reg))
	if err != nil {
		return nil, err
	}
	return xmpp.WithFederation(fed), nil
}

// serve runs the ops listener, the pipeline and the component until ctx
// ends or one of them fails, and returns once all three have stopped. The
// component outlives the pipeline, so no delivery meets a closed stream.
func (gw *gateway) serve(ctx context.Context, hooks GatewayHooks) error {
	ln, err := net.Listen("tcp", gw.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	if hooks.MetricsListening != nil {
		hooks.MetricsListening(ln.Addr().String())
	}
	xmppAddr := gw.cfg.XMPPAddr
	if gw.cfg.XMPPMode == ModeS2S {
		xmppAddr = "s2s on " + gw.cfg.S2SAddr
	}
	gw.log.Info("gateway starting", "domain", gw.cfg.Domain, "xmpp", xmppAddr,
		"nats", gw.in.natsURL, "metrics", ln.Addr().String())

	srv := &http.Server{Handler: gw.ops, ReadHeaderTimeout: 5 * time.Second}
	g, gctx := errgroup.WithContext(ctx)
	compCtx, stopComp := context.WithCancel(context.WithoutCancel(ctx))
	defer stopComp()
	g.Go(func() error { return serveHTTP(gctx, srv, ln, opsGrace) })
	g.Go(func() error {
		defer stopComp()
		gw.runPipeline(gctx)
		if gctx.Err() == nil {
			return errors.New("delivery pipeline stopped")
		}
		return nil
	})
	g.Go(func() error { return gw.comp.Run(compCtx) })
	g.Go(func() error { return gw.relay.Serve(compCtx, gw.comp.Settle) })
	return g.Wait()
}

// runPipeline consumes until ctx ends. Streams and consumers are retried
// until they work: NATS may come up after us, and the pipeline must
// outlive its hiccups.
func (gw *gateway) runPipeline(ctx context.Context) {
	_ = retry(ctx, gw.log, "delivery pipeline", func(ctx context.Context) error {
		if err := fanout.EnsureStreams(ctx, gw.in.js, gw.cfg.streamLimits()); err != nil {
			return err
		}
		return gw.pipe.Run(ctx)
	})
}

// opsHandler serves /metrics, /healthz and /readyz. Ready means NATS and
// Redis answer; the component's link is reported as xmpp_connected but
// does not gate readiness, since only one replica may hold it against
// Prosody.
func opsHandler(reg *prometheus.Registry, comp *xmpp.Component, in *infra, log *slog.Logger) (http.Handler, error) {
	probes, err := health.New(health.Config{
		Checks: in.readiness(),
		Extra: func() map[string]any {
			return map[string]any{"xmpp_connected": comp.Connected(), "xmpp_links": comp.Links()}
		},
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttpHandler(reg))
	mux.Handle("GET /healthz", probes)
	mux.Handle("GET /readyz", probes)
	return mux, nil
}
