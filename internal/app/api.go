package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"starling.dev/starling/fanout"
	"starling.dev/starling/httpapi"
	"starling.dev/starling/subscribers"
)

// APIHooks lets a caller observe the API process; every field may be nil.
type APIHooks struct {
	// Listening is called with the HTTP listener's address once it listens.
	Listening func(addr string)
}

// apiGrace bounds how long requests in flight may take to finish at
// shutdown.
const apiGrace = 10 * time.Second

// RunAPI serves the HTTP API until ctx ends, then stops accepting requests,
// finishes those in flight (up to 10 s), drains NATS and closes Redis.
func RunAPI(ctx context.Context, cfg API, log *slog.Logger, hooks APIHooks) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	in, err := openInfra(cfg.infraConfig(), log)
	if err != nil {
		return err
	}
	defer in.close() // last: nothing uses NATS or Redis any more
	hub := httpapi.NewHub(httpapi.HubConfig{MaxClients: cfg.SSEMaxClients, MaxPerIP: cfg.SSEMaxPerIP})
	h, err := apiHandler(ctx, cfg, in, hub, log)
	if err != nil {
		return err
	}
	if cfg.AdminToken == "" {
		log.Warn("STARLING_ADMIN_TOKEN is unset: admin endpoints are disabled")
	}
	err = serveAPI(ctx, cfg, in, h, hub, log, hooks)
	log.Info("api stopped")
	return err
}

// infraConfig is the API's infrastructure: it always dials NATS.
func (c API) infraConfig() infraConfig {
	return infraConfig{redisURL: c.RedisURL, redisCluster: c.RedisCluster, natsURL: c.NATSURL, natsToken: c.NATSToken, clientName: "starling-api"}
}

// apiHandler builds the stores and the HTTP API over them.
func apiHandler(ctx context.Context, cfg API, in *infra, hub *httpapi.Hub, log *slog.Logger) (http.Handler, error) {
	st, err := openStores(in.rdb, cfg.RedisPrefix, cfg.PostHistory, subscribers.WithFollowerShards(cfg.FollowerShards), subscribers.WithShardCheck())
	if err != nil {
		return nil, err
	}
	if err := checkStores(ctx, st, cfg.FollowerShards, log); err != nil {
		return nil, err
	}
	reg := newRegistry()
	return httpapi.New(st.accountStore, st.graphStore, fanout.NewPostPublisher(in.js), httpapi.Config{
		Domain:       cfg.Domain,
		AdminToken:   cfg.AdminToken,
		MaxPostChars: cfg.MaxPostChars,
		Ready:        in.readiness(),
		Logger:       log,
		Registerer:   reg,
		Gatherer:     reg,
		RateLimits: httpapi.RateLimits{
			IPPerSecond: cfg.RateIP, IPBurst: cfg.RateIPBurst,
			TokenPerSecond: cfg.RateToken, TokenBurst: cfg.RateTokenBurst,
		},
		TrustedProxies: cfg.TrustedProxies,
		Hub:            hub,
		PublicURL:      cfg.PublicURL,
		AuthCacheTTL:   cfg.AuthCacheTTL,
		JIDCodeTTL:     cfg.JIDCodeTTL,
	})
}

// serveAPI serves h until ctx ends or the listener fails, and meanwhile
// makes sure the JetStream streams exist and feeds the hub of live pages
// from the stream of posts. It returns once all have stopped.
func serveAPI(ctx context.Context, cfg API, in *infra, h http.Handler, hub *httpapi.Hub, log *slog.Logger, hooks APIHooks) error {
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	if hooks.Listening != nil {
		hooks.Listening(ln.Addr().String())
	}
	log.Info("api listening", "addr", ln.Addr().String(), "nats", in.natsURL)
	// The import route extends its own deadlines; every other request must
	// be read in 30 s and answered within 30 s more.
	srv := &http.Server{
		Handler:           h,
		MaxHeaderBytes:    16 << 10,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveHTTP(gctx, srv, ln, apiGrace) })
	// Ends with gctx and then closes the hub, which ends the event streams
	// that the server's shutdown would otherwise wait for.
	g.Go(func() error {
		return hub.Follow(gctx, in.js, httpapi.FollowConfig{Stream: fanout.PostsStream, Logger: log})
	})
	g.Go(func() error {
		// The streams usually exist (the gateway makes them too); while
		// NATS is not up, publishing answers 503 and this retries.
		_ = retry(gctx, log, "creating JetStream streams", func(ctx context.Context) error {
			return fanout.EnsureStreams(ctx, in.js, cfg.streamLimits())
		})
		return nil
	})
	return g.Wait()
}
