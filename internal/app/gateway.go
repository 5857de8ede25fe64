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
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"starling.dev/starling/fanout"
	"starling.dev/starling/xmpp"
)

// GatewayHooks lets a caller observe the gateway; every field may be nil.
type GatewayHooks struct {
	// MetricsListening is called with the ops listener's address once it
	// listens, so that tests can use port 0.
	MetricsListening func(addr string)
}

// RunGateway runs the gateway until ctx ends, then shuts down in order:
// stop consuming, close the component stream, drain NATS, stop the embedded
// server, close Redis.
func RunGateway(ctx context.Context, cfg Gateway, log *slog.Logger, hooks GatewayHooks) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	rdb, err := openRedis(cfg.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()

	natsURL := cfg.NATSURL
	if natsURL == "" {
		ns, err := startEmbeddedNATS(cfg.EmbeddedNATSAddr, cfg.DataDir, log)
		if err != nil {
			return err
		}
		defer func() {
			ns.Shutdown()
			ns.WaitForShutdown()
		}()
		natsURL = ns.ClientURL()
	}
	nc, err := connectNATS(natsURL, "starling-gateway", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(256),
		jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		return err
	}

	reg := newRegistry()
	metrics := fanout.NewMetrics(reg)

	st, err := openStores(rdb, cfg.RedisPrefix, 0)
	if err != nil {
		return err
	}
	comp, err := xmpp.New(st, xmpp.NewMetrics(reg), log, xmpp.Config{
		Domain: cfg.Domain, Addr: cfg.XMPPAddr, Secret: cfg.XMPPSecret, PingTo: cfg.XMPPPingTo,
		ProbeRate: cfg.ProbeRate, CommandRate: cfg.CommandRate, CommandBurst: cfg.CommandBurst,
		MaxFollowing: cfg.MaxFollowing,
	})
	if err != nil {
		return err
	}
	fan := fanout.NewFanout(st.graphStore, fanout.NewJetStreamSink(js), metrics)
	send := fanout.NewSend(comp, 0, metrics)
	pipe, err := fanout.NewPipeline(js, fan, send, log, metrics, fanout.ConsumerConfig{})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	srv := &http.Server{
		Handler:           opsHandler(reg, comp, natsReady(nc), redisReady(rdb)),
		ReadHeaderTimeout: 5 * time.Second,
	}
	if hooks.MetricsListening != nil {
		hooks.MetricsListening(ln.Addr().String())
	}
	log.Info("gateway starting", "domain", cfg.Domain, "xmpp", cfg.XMPPAddr, "nats", natsURL, "metrics", ln.Addr().String())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	g.Go(func() error { return comp.Run(gctx) })
	g.Go(func() error {
		// Streams and consumers are retried until they work: NATS may
		// come up after us, and the pipeline must outlive its hiccups.
		_ = retry(gctx, log, "delivery pipeline", func(ctx context.Context) error {
			if err := fanout.EnsureStreams(ctx, js); err != nil {
				return err
			}
			return pipe.Run(ctx)
		})
		return nil
	})
	err = g.Wait()
	if derr := nc.Drain(); derr != nil && !errors.Is(derr, context.Canceled) {
		log.Debug("nats drain", "err", derr)
	}
	log.Info("gateway stopped")
	return err
}

// opsHandler serves /metrics, /healthz and /readyz. Ready means NATS and
// Redis answer; the component's link is reported but does not gate
// readiness, since only one replica may hold it against Prosody.
func opsHandler(reg *prometheus.Registry, comp *xmpp.Component, checks ...func(context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttpHandler(reg))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		for _, check := range checks {
			if err := check(ctx); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, "{\"status\":\"unavailable\",\"error\":%q}\n", err.Error())
				return
			}
		}
		fmt.Fprintf(w, "{\"status\":\"ready\",\"xmpp_connected\":%t}\n", comp.Connected())
	})
	return mux
}
