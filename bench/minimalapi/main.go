// Command minimalapi is the ingest benchmark's yardstick: the least a Go
// HTTP service must do to accept a post durably. One handler reads the JSON
// body, gives the post a ULID, publishes it with Nats-Msg-Id to a stream
// configured like POSTS and answers 202 once JetStream has acknowledged it.
// No authentication, no validation beyond the JSON, no Redis: whatever
// POST /v1/statuses costs beyond this is Starling's own.
//
//	minimalapi -addr 127.0.0.1:8081 -nats nats://127.0.0.1:4222
//
// See bench/README.md.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"starling.dev/starling"
)

// The stream the posts go to: POSTS's settings (fanout.EnsureStreams with
// the default limits) under another name, so the two never mix.
const (
	streamName = "MINPOSTS"
	subject    = "minposts.ingest"
)

func streamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       streamName,
		Subjects:   []string{"minposts.*"},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		MaxAge:     7 * 24 * time.Hour,
		MaxBytes:   1 << 30,
		Discard:    jetstream.DiscardOld,
		Duplicates: 2 * time.Minute,
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "HTTP listen address")
	natsURL := flag.String("nats", nats.DefaultURL, "NATS server URL")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *natsURL, log, nil); err != nil {
		log.Error("minimalapi", "err", err)
		os.Exit(1)
	}
}

// run serves until ctx ends; ready, when set, is told the address listened
// on.
func run(ctx context.Context, addr, natsURL string, log *slog.Logger, ready func(string)) error {
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = js.CreateOrUpdateStream(sctx, streamConfig())
	cancel()
	if err != nil {
		return fmt.Errorf("stream %s: %w", streamName, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/statuses", &handler{js: js, entropy: ulid.Monotonic(rand.Reader, 0)})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	log.Info("minimalapi: listening", "addr", ln.Addr().String(), "stream", streamName)
	if ready != nil {
		ready(ln.Addr().String())
	}
	err = srv.Serve(ln)
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

type handler struct {
	js      jetstream.JetStream
	mu      sync.Mutex
	entropy *ulid.MonotonicEntropy
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Text string `json:"text"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil {
		http.Error(w, "bad JSON", http.StatusBadRequest)
		return
	}
	now := time.Now().UTC()
	h.mu.Lock()
	id, err := ulid.New(ulid.Timestamp(now), h.entropy)
	h.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	post := starling.Post{ID: id.String(), Author: "ingest", Text: body.Text, CreatedAt: now}
	data, err := json.Marshal(post)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if _, err := h.js.Publish(r.Context(), subject, data, jetstream.WithMsgID(post.ID), jetstream.WithExpectStream(streamName)); err != nil {
		w.Header().Set("Retry-After", "1")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(data)
}
