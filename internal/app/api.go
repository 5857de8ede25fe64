package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"starling.dev/starling/fanout"
	"starling.dev/starling/httpapi"
)

// APIHooks lets a caller observe the API process; every field may be nil.
type APIHooks struct {
	// Listening is called with the HTTP listener's address once it listens.
	Listening func(addr string)
}

// RunAPI serves the HTTP API until ctx ends, then stops accepting requests,
// finishes those in flight (up to 10 s), drains NATS and closes Redis.
func RunAPI(ctx context.Context, cfg API, log *slog.Logger, hooks APIHooks) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	rdb, err := openRedis(cfg.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	nc, err := connectNATS(cfg.NATSURL, "starling-api", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	// The streams usually exist (the gateway makes them too); when NATS is
	// not up yet, publishing answers 503 until it is, and this retries.
	sctx, stopStreams := context.WithCancel(ctx)
	streamsDone := make(chan struct{})
	go func() {
		defer close(streamsDone)
		_ = retry(sctx, log, "creating JetStream streams", func(ctx context.Context) error {
			return fanout.EnsureStreams(ctx, js)
		})
	}()
	// Stopped and waited for before NATS closes, however RunAPI returns.
	defer func() {
		stopStreams()
		<-streamsDone
	}()

	st, err := openStores(rdb, cfg.RedisPrefix, cfg.PostHistory)
	if err != nil {
		return err
	}
	reg := newRegistry()
	h, err := httpapi.New(st.accountStore, st.graphStore, fanout.NewPostPublisher(js), httpapi.Config{
		Domain:       cfg.Domain,
		AdminToken:   cfg.AdminToken,
		MaxPostChars: cfg.MaxPostChars,
		Ready:        []func(context.Context) error{natsReady(nc), redisReady(rdb)},
		Logger:       log,
		Registerer:   reg,
		Gatherer:     reg,
		RateLimits: httpapi.RateLimits{
			IPPerSecond: offIfZero(cfg.RateIP), IPBurst: cfg.RateIPBurst,
			TokenPerSecond: offIfZero(cfg.RateToken), TokenBurst: cfg.RateTokenBurst,
		},
	})
	if err != nil {
		return err
	}
	if cfg.AdminToken == "" {
		log.Warn("STARLING_ADMIN_TOKEN is unset: admin endpoints are disabled")
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
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
	if hooks.Listening != nil {
		hooks.Listening(ln.Addr().String())
	}
	log.Info("api listening", "addr", ln.Addr().String(), "nats", cfg.NATSURL)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	_ = nc.Drain()
	log.Info("api stopped")
	return err
}

// offIfZero maps a configured rate of 0 ("off") to httpapi's negative rate,
// since httpapi reads 0 as "the default".
func offIfZero(perSecond float64) float64 {
	if perSecond == 0 {
		return -1
	}
	return perSecond
}
