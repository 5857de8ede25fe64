package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"starling.dev/starling/accounts"
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
// accounts package's default.
func openStores(rdb redis.UniversalClient, prefix string, recentPosts int) (*stores, error) {
	graph := subscribers.NewRedisStore(rdb, prefix)
	acc, err := accounts.NewRedisStore(rdb, graph, accounts.RedisConfig{Prefix: prefix, RecentPosts: recentPosts})
	if err != nil {
		return nil, err
	}
	return &stores{acc, graph}, nil
}

func openRedis(url string) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	return redis.NewClient(opts), nil
}

// startEmbeddedNATS runs the real NATS server in-process with JetStream on
// disk, for single-machine deployments and `make run`.
func startEmbeddedNATS(addr, dataDir string, log *slog.Logger) (*server.Server, error) {
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
	})
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready on %s (is the port taken?)", addr)
	}
	log.Info("embedded NATS with JetStream started", "addr", s.ClientURL(), "store", dir)
	return s, nil
}

func connectNATS(url, name string, log *slog.Logger) (*nats.Conn, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("NATS disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("NATS reconnected", "url", c.ConnectedUrl())
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("nats connect %s: %w", url, err)
	}
	return nc, nil
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
