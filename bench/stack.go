package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"starling.dev/starling/internal/app"
	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/subscribers"
)

const (
	sinkDomain   = "sink.localhost"
	latDomain    = "lat.localhost"
	pubsubDomain = "pubsub.localhost"
	pubOwner     = "pubowner"
	adminToken   = "bench-admin-token"
)

// stack is the real system the scenarios drive: redis-server, Prosody with
// the sink components, NATS with JetStream, and Starling's API and gateway
// run in this process by the functions the binaries call.
type stack struct {
	t      *runner
	redis  *testenv.Redis
	rdb    *redis.Client
	store  *subscribers.RedisStore
	prefix string
	pros   *testenv.Prosody
	nats   *testenv.NATS
	js     jetstream.JetStream
	sink   *sink // sink.localhost on Prosody: the big audiences
	lat    *sink // lat.localhost on Prosody: the small authors' followers
	api    string
	http   *http.Client
	logf   *os.File
	log    *slog.Logger

	tokens    map[string]string // author → bearer token
	followers map[string]int    // author → followers stored
}

func startStack(t *runner) *stack {
	s := &stack{t: t, tokens: map[string]string{}, followers: map[string]int{}}
	s.redis = testenv.StartRedis(t)
	s.rdb = s.redis.Client(t)
	s.prefix = "bench:"
	var err error
	if s.store, err = subscribers.NewRedisStore(s.rdb, subscribers.RedisConfig{Prefix: s.prefix}); err != nil {
		t.Fatal(err)
	}
	s.pros = testenv.StartProsody(t, testenv.WithComponents(sinkDomain, latDomain))
	s.nats = testenv.StartNATS(t)
	if s.js, err = jetstream.New(s.nats.Conn(t)); err != nil {
		t.Fatal(err)
	}
	info := s.pros.Info()
	s.sink = startSink(t, info.ComponentAddr, sinkDomain, info.Secret)
	s.lat = startSink(t, info.ComponentAddr, latDomain, info.Secret)
	s.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 128}}
	t.Cleanup(s.http.CloseIdleConnections)

	if s.logf, err = os.Create(filepath.Join(t.TempDir(), "starling.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.logf.Close() })
	s.log = slog.New(slog.NewTextHandler(s.logf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s.startAPI()
	return s
}

// env is the configuration both processes read, as STARLING_* variables.
func (s *stack) env(xmppAddr string) func(string) (string, bool) {
	info := s.pros.Info()
	env := map[string]string{
		"STARLING_REDIS_URL": s.redis.URL, "STARLING_REDIS_PREFIX": s.prefix, "STARLING_NATS_URL": s.nats.URL,
		"STARLING_XMPP_DOMAIN": info.ComponentDomain, "STARLING_METRICS_ADDR": "127.0.0.1:0", "STARLING_LOG_LEVEL": "info",
		"STARLING_XMPP_ADDR": xmppAddr, "STARLING_XMPP_SECRET": info.Secret, "STARLING_XMPP_PING_TO": info.Host,
		"STARLING_HTTP_ADDR": "127.0.0.1:0", "STARLING_ADMIN_TOKEN": adminToken,
		// The benchmark posts as fast as it can: no per-IP or per-token limit.
		"STARLING_RATE_IP": "0", "STARLING_RATE_TOKEN": "0",
	}
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func (s *stack) startAPI() {
	cfg, err := app.ParseAPI(nil, s.env(""))
	if err != nil {
		s.t.Fatalf("api config: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- app.RunAPI(ctx, cfg, s.log.With("proc", "api"), app.APIHooks{Listening: func(a string) { addr <- a }})
	}()
	s.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			s.t.Errorf("api: %v", err)
		}
	})
	select {
	case a := <-addr:
		s.api = "http://" + a
	case err := <-done:
		s.t.Fatalf("api: %v", err)
	case <-time.After(15 * time.Second):
		s.t.Fatalf("api did not listen within 15s")
	}
}

// gateway is one run of app.RunGateway in this process.
type gateway struct {
	ops    string
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	t      *runner
}

// startGateway runs the gateway with its component connection to xmppAddr
// and returns once /readyz answers 200 with the component connected, and
// how long that took from the call of RunGateway.
func (s *stack) startGateway(xmppAddr string) (*gateway, time.Duration) {
	cfg, err := app.ParseGateway(nil, s.env(xmppAddr))
	if err != nil {
		s.t.Fatalf("gateway config: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &gateway{cancel: cancel, done: make(chan error, 1), t: s.t}
	ops := make(chan string, 1)
	start := time.Now()
	go func() {
		g.done <- app.RunGateway(ctx, cfg, s.log.With("proc", "gateway"), app.GatewayHooks{MetricsListening: func(a string) { ops <- a }})
	}()
	s.t.Cleanup(g.stop)
	select {
	case a := <-ops:
		g.ops = "http://" + a + "/readyz"
	case err := <-g.done:
		s.t.Fatalf("gateway: %v", err)
	case <-time.After(15 * time.Second):
		s.t.Fatalf("gateway: no ops listener within 15s")
	}
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for !ready(c, g.ops) {
		if time.Now().After(deadline) {
			s.t.Fatalf("gateway not ready (readyz 200 with xmpp_connected) within 20s; log: %s", s.logf.Name())
		}
		time.Sleep(time.Millisecond)
	}
	return g, time.Since(start)
}

func ready(c *http.Client, url string) bool {
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body struct {
		XMPP bool `json:"xmpp_connected"`
	}
	return resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&body) == nil && body.XMPP
}

func (g *gateway) stop() {
	g.once.Do(func() {
		g.cancel()
		if err := <-g.done; err != nil {
			g.t.Errorf("gateway: %v", err)
		}
	})
}

// call makes a JSON request to the API.
func (s *stack) call(method, path, token string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.api+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %q: %w", raw, err)
		}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(raw))
	}
	return resp.StatusCode, nil
}

// author creates the user (once) and returns its token.
func (s *stack) author(name string) string {
	if tok, ok := s.tokens[name]; ok {
		return tok
	}
	var out struct{ Token string }
	if _, err := s.call("POST", "/v1/users", adminToken, map[string]string{"username": name, "display_name": "Bench " + name}, &out); err != nil {
		s.t.Fatalf("create %s: %v", name, err)
	}
	s.tokens[name] = out.Token
	return out.Token
}

// post publishes a status and returns its id and when the 202 arrived.
func (s *stack) post(author, text string) (string, time.Time) {
	var st struct{ ID string }
	code, err := s.call("POST", "/v1/statuses", s.author(author), map[string]string{"text": text}, &st)
	if err != nil || code != 202 {
		s.t.Fatalf("post as %s: %d %v", author, code, err)
	}
	return st.ID, time.Now()
}

// ensureFollowers makes name(0..n-1) follow author, with the store's own
// pipelined AddFollowers (the follow edge and the g: index, as a follow
// does), 1000 JIDs per round trip on 4 connections.
func (s *stack) ensureFollowers(author string, n int, name func(int) string) time.Duration {
	s.author(author)
	have := s.followers[author]
	if have >= n {
		return 0
	}
	start := time.Now()
	const chunk, workers = 1000, 4
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range workers {
		wg.Go(func() {
			jids := make([]string, 0, chunk)
			for from := range next {
				jids = jids[:0]
				for i := from; i < min(from+chunk, n); i++ {
					jids = append(jids, name(i))
				}
				if _, err := s.store.AddFollowers(context.Background(), author, jids); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}
		})
	}
	for from := have; from < n; from += chunk {
		next <- from
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		s.t.Fatalf("load followers of %s: %v", author, firstErr)
	}
	s.followers[author] = n
	return time.Since(start)
}

// drained waits until every consumer of both streams has nothing pending.
func (s *stack) drained(within time.Duration) {
	ctx := context.Background()
	deadline := time.Now().Add(within)
	for {
		idle := true
		for _, name := range []string{"POSTS", "DELIVERIES"} {
			st, err := s.js.Stream(ctx, name)
			if err != nil {
				idle = false
				break
			}
			l := st.ListConsumers(ctx)
			n := 0
			for ci := range l.Info() {
				n++
				if ci.NumPending != 0 || ci.NumAckPending != 0 {
					idle = false
				}
			}
			if l.Err() != nil || n == 0 {
				idle = false
			}
		}
		if idle {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the pipeline did not drain within %s", within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// redisInfo reads one field of INFO section.
func (s *stack) redisInfo(section, field string) float64 {
	info, err := s.rdb.Info(context.Background(), section).Result()
	if err != nil {
		s.t.Fatalf("redis info: %v", err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == field {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// redisCPU is the Redis server's CPU seconds so far.
func (s *stack) redisCPU() float64 {
	return s.redisInfo("cpu", "used_cpu_user") + s.redisInfo("cpu", "used_cpu_sys")
}
