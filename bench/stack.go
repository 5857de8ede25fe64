package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	teststack "starling.dev/starling/internal/testenv/stack"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

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

// stack is the real system the scenarios drive: testenv's Stack with
// Prosody carrying the sink components, Redis, NATS with JetStream, and
// Starling's API; gateways are started by the scenarios. In the headline
// view the API and the gateways are the built binaries, NATS is a
// nats-server process and the sinks are receiver processes; in the
// in-process view the API and the gateways run in the bench process (the
// functions the binaries call), NATS too, and the sinks are testenv's
// byte-counting components.
type stack struct {
	t      *runner
	st     *teststack.Stack
	procs  bool
	rdb    *redis.Client
	store  *subscribers.RedisStore
	prefix string
	pros   *testenv.Prosody
	nats   *testenv.NATS
	js     jetstream.JetStream
	sink   counter // sink.localhost on Prosody: the big audiences
	lat    counter // lat.localhost on Prosody: the small authors' followers
	// The receiver processes of the headline view.
	sinkRecv, latRecv *recvProc
	logf              *os.File // the in-process gateway's and API's log
	dir               string   // the processes' logs (headline view)

	tokens    map[string]string // author → bearer token
	followers map[string]int    // author → followers stored
}

func (b *bench) startStack() *stack {
	t := b.t
	s := &stack{t: t, procs: !b.v.inproc, tokens: map[string]string{}, followers: map[string]int{}, dir: t.TempDir()}
	var err error
	if s.logf, err = os.Create(filepath.Join(s.dir, "starling.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.logf.Close() })
	s.pros = testenv.StartProsody(t, testenv.WithComponents(sinkDomain, latDomain))
	o := teststack.Options{
		XMPP: s.pros, NoGateway: true, Dir: s.dir,
		AdminToken: adminToken, Prefix: "bench:", LogLevel: "info", Log: s.logf,
		// The benchmark posts as fast as it can: no per-IP or per-token limit.
		Env: map[string]string{"STARLING_RATE_IP": "0", "STARLING_RATE_TOKEN": "0"},
	}
	// STARLING_* settings in the bench's own environment reach the gateway
	// and the API (e.g. STARLING_QUEUE_DELAY=50ms go run ./bench ...).
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "STARLING_") {
			o.Env[k] = v
		}
	}
	if s.procs {
		o.Processes, o.ExternalNATS = true, true
	} else {
		o.Sinks = []string{sinkDomain, latDomain}
	}
	s.st = teststack.StartStack(t, o)
	s.rdb, s.store, s.prefix = s.st.RDB, s.st.Graph, s.st.Prefix
	s.nats, s.js = s.st.NATS, s.st.JS
	info := s.pros.Info()
	if s.procs {
		s.sinkRecv = b.startComponentReceiver(info.ComponentAddr, info.Secret, sinkDomain)
		s.latRecv = b.startComponentReceiver(info.ComponentAddr, info.Secret, latDomain)
		s.sink, s.lat = s.sinkRecv, s.latRecv
	} else {
		s.sink = scanCounter{sc: s.st.Sinks[sinkDomain].Scan}
		s.lat = scanCounter{sc: s.st.Sinks[latDomain].Scan}
	}
	return s
}

// startGateway runs the gateway with its component connection to xmppAddr
// and returns once /readyz answers 200 with the component connected, and
// how long that took from its start.
func (s *stack) startGateway(xmppAddr string) (*teststack.Gateway, time.Duration) {
	g := s.st.StartGateway(s.t, xmppAddr)
	return g, g.Ready
}

// gatewayLog is where to look when a fanout fails.
func (s *stack) gatewayLog(g *teststack.Gateway) string {
	if g != nil && g.Log() != "" {
		return g.Log() + ":\n" + testenv.Tail(g.Log())
	}
	return s.logf.Name()
}

// call makes a JSON request to the API.
func (s *stack) call(method, path, token string, body any, out any) (int, error) {
	return s.st.Call(method, path, token, body, out)
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
func (s *stack) drained(within time.Duration) { s.st.Drained(s.t, within) }

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
