package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"starling.dev/starling/fanout"
	"starling.dev/starling/internal/app"
	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/subscribers"
)

// Options says what StartStack builds. The zero value is the end-to-end
// tests' system: Prosody, a fresh Redis and NATS, and the gateway and API
// run in this process by the functions the binaries call.
type Options struct {
	// XMPP is the server the gateway connects to; nil starts Prosody with
	// the Sinks' domains declared and ProsodyOptions.
	XMPP           testenv.XMPPServer
	ProsodyOptions []testenv.ServerOption
	// Sinks are component domains, declared on the XMPP server, to which a
	// counting Sink connects (Stack.Sinks[domain]).
	Sinks []string
	// Processes runs the gateway and the API as separate processes, built
	// from ./cmd/gateway and ./cmd/api and configured by STARLING_*
	// variables, as an operator runs them.
	Processes bool
	// NoGateway leaves starting the gateway to StartGateway.
	NoGateway bool
	// Env holds STARLING_* settings for both processes, over the stack's.
	Env map[string]string
	// AdminToken is the API's admin token; "" means a fixed test token.
	AdminToken string
	// Prefix is the Redis key prefix; "" means one unique to the test.
	Prefix string
	// LogLevel of both processes; "" means debug.
	LogLevel string
	// Log receives the logs of the in-process gateway and API; nil sends
	// them to t.Logf. (Separate processes log to Dir/gateway.log and
	// Dir/api.log.)
	Log io.Writer
	// Dir holds the binaries (Dir/bin) and logs of separate processes; ""
	// means a temporary folder.
	Dir   string
	Redis testenv.RedisOptions
	// RedisCluster, when set, is the Redis of the gateway, the API and the
	// stack's own helpers (Graph, ClusterRDB), given as seed nodes with
	// STARLING_REDIS_CLUSTER=true; the stack then starts no redis-server of
	// its own (Redis and RDB stay nil) and Redis options are ignored.
	RedisCluster *testenv.RedisCluster
	NATS         testenv.NATSOptions
	// ExternalNATS runs nats-server as a separate process (built from the
	// module's nats-server), restartable by Stack.NATSProc, instead of in
	// this process; NATS options are then ignored.
	ExternalNATS bool
	// HTTPPort and MetricsPort fix the API's and the gateway's ports; 0
	// means free ones.
	HTTPPort, MetricsPort int
}

// Stack is the whole system on real servers: Redis, an XMPP server, NATS
// with JetStream, the gateway and the API, and optionally counting sinks.
// Everything it starts stops when the test ends.
type Stack struct {
	Redis  *testenv.Redis
	XMPP   testenv.XMPPServer
	Server testenv.ServerInfo // XMPP.Info()
	NATS   *testenv.NATS
	// NATSProc is the nats-server process of an ExternalNATS stack (only its
	// URL is in NATS then).
	NATSProc *NATSProcess
	JS       jetstream.JetStream
	RDB      *redis.Client
	// ClusterRDB is a client of Options.RedisCluster, in place of RDB.
	ClusterRDB *redis.ClusterClient
	// Graph is the social graph the gateway reads (see newGraph).
	Graph      *subscribers.RedisStore
	Sinks      map[string]*testenv.Sink
	Prefix     string
	AdminToken string
	// API is the API's base URL, "http://127.0.0.1:port".
	API string
	// Gateway is the gateway StartStack started (nil with NoGateway);
	// RestartGateway replaces it.
	Gateway *Gateway

	opts Options
	log  *slog.Logger
	bin  string // folder of the built binaries, process mode
	api  *service
	http *http.Client
}

// DefaultAdminToken is the admin token of a stack whose options name none.
const DefaultAdminToken = "testenv-admin-token"

// newGraph is the one place the stack builds the store the gateway reads.
func newGraph(rdb redis.UniversalClient, prefix string) *subscribers.RedisStore {
	return subscribers.NewRedisStore(rdb, prefix)
}

// StartStack starts the system as o says and returns once the API answers
// and (unless NoGateway) the gateway's component is connected.
func StartStack(t testenv.TB, o Options) *Stack {
	t.Helper()
	s := &Stack{opts: o, Prefix: o.Prefix, AdminToken: o.AdminToken, Sinks: map[string]*testenv.Sink{}}
	if s.Prefix == "" {
		s.Prefix = testenv.Prefix(t)
	}
	if s.AdminToken == "" {
		s.AdminToken = DefaultAdminToken
	}
	if s.opts.LogLevel == "" {
		s.opts.LogLevel = "debug"
	}
	s.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 128}}
	t.Cleanup(s.http.CloseIdleConnections)
	if o.Processes {
		s.bin = buildBinaries(t, s.dir(t))
	}

	if o.RedisCluster != nil {
		s.ClusterRDB = o.RedisCluster.Client(t)
		s.Graph = newGraph(s.ClusterRDB, s.Prefix)
	} else {
		s.Redis = testenv.StartRedisWith(t, o.Redis)
		s.RDB = s.Redis.Client(t)
		s.Graph = newGraph(s.RDB, s.Prefix)
	}
	if s.XMPP = o.XMPP; s.XMPP == nil {
		s.XMPP = testenv.StartProsody(t, append([]testenv.ServerOption{testenv.WithComponents(o.Sinks...)}, o.ProsodyOptions...)...)
	}
	s.Server = s.XMPP.Info()
	if o.ExternalNATS {
		s.NATSProc = startNATSProcess(t, s.dir(t))
		s.NATS = &testenv.NATS{URL: s.NATSProc.URL}
	} else {
		s.NATS = testenv.StartNATSWith(t, o.NATS)
	}
	var err error
	if s.JS, err = jetstream.New(s.NATS.Conn(t)); err != nil {
		t.Fatalf("testenv: jetstream: %v", err)
	}
	for _, d := range o.Sinks {
		s.Sinks[d] = testenv.StartSink(t, componentAddrOf(s.XMPP, d), s.Server.Secret, d)
	}

	w := o.Log
	if w == nil {
		w = &tbWriter{t: t}
	}
	s.log = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s.startAPI(t)
	if !o.NoGateway {
		s.Gateway = s.StartGateway(t, s.Server.ComponentAddr)
	}
	return s
}

// componentAddrOf is where the component for domain connects on server.
func componentAddrOf(server testenv.XMPPServer, domain string) string {
	if c, ok := server.(interface{ ComponentAddrOf(string) string }); ok {
		return c.ComponentAddrOf(domain)
	}
	return server.Info().ComponentAddr
}

// dir is Options.Dir, made once when empty.
func (s *Stack) dir(t testenv.TB) string {
	if s.opts.Dir == "" {
		s.opts.Dir = t.TempDir()
	}
	return s.opts.Dir
}

// env is the configuration of one process, as STARLING_* variables.
func (s *Stack) env(role, xmppAddr, listen string) map[string]string {
	env := map[string]string{
		"STARLING_REDIS_PREFIX": s.Prefix, "STARLING_NATS_URL": s.NATS.URL,
		"STARLING_XMPP_DOMAIN": s.Server.ComponentDomain, "STARLING_LOG_LEVEL": s.opts.LogLevel,
	}
	if rc := s.opts.RedisCluster; rc != nil {
		env["STARLING_REDIS_URL"], env["STARLING_REDIS_CLUSTER"] = rc.URL, "true"
	} else {
		env["STARLING_REDIS_URL"] = s.Redis.URL
	}
	switch role {
	case "gateway":
		env["STARLING_XMPP_ADDR"] = xmppAddr
		env["STARLING_XMPP_SECRET"] = s.Server.Secret
		env["STARLING_XMPP_PING_TO"] = s.Server.Host
		env["STARLING_METRICS_ADDR"] = listen
	case "api":
		env["STARLING_HTTP_ADDR"] = listen
		env["STARLING_ADMIN_TOKEN"] = s.AdminToken
	}
	maps.Copy(env, s.opts.Env)
	return env
}

// listenAddr is the loopback address of a fixed port, or of a free one: a
// separate process must be told its port, while one in this process can
// take port 0 and report it.
func (s *Stack) listenAddr(t testenv.TB, p int) string {
	if p == 0 && !s.opts.Processes {
		return "127.0.0.1:0"
	}
	return testenv.Addr(testenv.Port(t, p))
}

func (s *Stack) startAPI(t testenv.TB) {
	t.Helper()
	env := s.env("api", "", s.listenAddr(t, s.opts.HTTPPort))
	s.api = s.run(t, "api", env, env["STARLING_HTTP_ADDR"])
	s.API = s.api.url
	s.waitReady(t, s.api, false, 30*time.Second)
}

// Gateway is one run of the gateway.
type Gateway struct {
	// Ops is the base URL of its /metrics, /healthz and /readyz.
	Ops string
	// Ready is how long it took from start to ready with its component
	// connected.
	Ready time.Duration
	svc   *service
}

// Stop stops the gateway and waits for it; it is safe to call twice.
func (g *Gateway) Stop() { g.svc.Stop() }

// Log is the gateway's log file (separate process), or "".
func (g *Gateway) Log() string { return g.svc.log }

// StartGateway runs a gateway whose component connects to xmppAddr and
// returns once /readyz answers 200 with the component connected. It stops
// when the test ends, if not before.
func (s *Stack) StartGateway(t testenv.TB, xmppAddr string) *Gateway {
	t.Helper()
	env := s.env("gateway", xmppAddr, s.listenAddr(t, s.opts.MetricsPort))
	start := time.Now()
	svc := s.run(t, "gateway", env, env["STARLING_METRICS_ADDR"])
	s.waitReady(t, svc, true, 30*time.Second)
	return &Gateway{Ops: svc.url, Ready: time.Since(start), svc: svc}
}

// RestartGateway stops the gateway and starts it again, as a deploy would.
func (s *Stack) RestartGateway(t testenv.TB) {
	t.Helper()
	if s.Gateway != nil {
		s.Gateway.Stop()
	}
	s.Gateway = s.StartGateway(t, s.Server.ComponentAddr)
}

// Wait blocks until ctx ends, and returns "", or until a part of the stack
// stops on its own (redis, prosody, gateway or api), and returns its name:
// make run then stops the rest.
func (s *Stack) Wait(ctx context.Context) string {
	var gw, xmpp, rdb <-chan struct{}
	if s.Gateway != nil {
		gw = s.Gateway.svc.exited
	}
	if s.Redis != nil {
		rdb = s.Redis.Exited()
	}
	if p, ok := s.XMPP.(*testenv.Prosody); ok {
		xmpp = p.Exited()
	}
	select {
	case <-ctx.Done():
		return ""
	case <-rdb:
		return "redis"
	case <-xmpp:
		return s.Server.Name
	case <-s.api.exited:
		return "api"
	case <-gw:
		return "gateway"
	}
}

// ComponentConnected asks the gateway's /readyz whether its XMPP link is up.
func (s *Stack) ComponentConnected() bool {
	return s.Gateway != nil && ready(s.http, s.Gateway.Ops, true)
}

// ready tells whether base/readyz answers 200 (and, with xmpp, reports the
// component connected).
func ready(c *http.Client, base string, xmpp bool) bool {
	resp, err := c.Get(base + "/readyz")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body struct {
		XMPP bool `json:"xmpp_connected"`
	}
	if resp.StatusCode != http.StatusOK {
		return false
	}
	return !xmpp || json.NewDecoder(resp.Body).Decode(&body) == nil && body.XMPP
}

// waitReady polls the service's /readyz until it is ready, failing the test
// if the service stops first or the deadline passes.
func (s *Stack) waitReady(t testenv.TB, svc *service, xmpp bool, within time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(within)
	for !ready(c, svc.url, xmpp) {
		select {
		case <-svc.exited:
			t.Fatalf("testenv: %s stopped while starting: %v%s", svc.name, svc.err(), svc.tail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: %s not ready (GET %s/readyz) within %s%s", svc.name, svc.url, within, svc.tail())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Call makes a JSON request to the API and decodes a 2xx JSON answer into
// out (when not nil). It returns the status, and an error for a failed
// request, an undecodable answer, or a status of 300 or more (with the body).
func (s *Stack) Call(method, path, token string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, s.API+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode %q: %w", method, path, raw, err)
		}
	}
	return resp.StatusCode, nil
}

// CreateUser makes an author through the API and returns their token.
func (s *Stack) CreateUser(t testenv.TB, name, displayName string) string {
	t.Helper()
	var out struct{ Token string }
	if _, err := s.Call("POST", "/v1/users", s.AdminToken, map[string]string{"username": name, "display_name": displayName}, &out); err != nil {
		t.Fatalf("testenv: create %s: %v", name, err)
	}
	return out.Token
}

// Status is a status as the API returns it.
type Status struct {
	ID        string `json:"id"`
	Author    string `json:"author"`
	Text      string `json:"text"`
	CreatedAt string `json:"created_at"`
}

// Post publishes text as the token's owner and returns the accepted status.
func (s *Stack) Post(t testenv.TB, token, text string) Status {
	t.Helper()
	var st Status
	if code, err := s.Call("POST", "/v1/statuses", token, map[string]string{"text": text}, &st); err != nil || code != http.StatusAccepted {
		t.Fatalf("testenv: post %q: %d %v", text, code, err)
	}
	return st
}

// Drained waits until every consumer of both streams has nothing pending
// or unacknowledged.
func (s *Stack) Drained(t testenv.TB, within time.Duration) {
	t.Helper()
	ctx := context.Background()
	var last []string // what was still busy, for the failure message
	testenv.Eventually(t, within, func() bool {
		last = last[:0]
		for _, name := range []string{fanout.PostsStream, fanout.DeliveriesStream} {
			st, err := s.JS.Stream(ctx, name)
			if err != nil {
				last = append(last, fmt.Sprintf("%s: %v", name, err))
				continue
			}
			l := st.ListConsumers(ctx)
			n := 0
			for ci := range l.Info() {
				n++
				if ci.NumPending != 0 || ci.NumAckPending != 0 {
					last = append(last, fmt.Sprintf("%s/%s: %d pending, %d unacknowledged", name, ci.Name, ci.NumPending, ci.NumAckPending))
				}
			}
			if err := l.Err(); err != nil || n == 0 {
				last = append(last, fmt.Sprintf("%s: %d consumers (%v)", name, n, err))
			}
		}
		return len(last) == 0
	}, "the pipeline did not drain: %v", &last)
}

// Client registers user on the XMPP server (password user+"-pw") and logs
// it in over c2s.
func (s *Stack) Client(t testenv.TB, user string, opts ...testenv.ClientOption) *testenv.Client {
	t.Helper()
	s.XMPP.Register(t, user, user+"-pw")
	return testenv.DialClient(t, s.Server.C2SAddr, user, s.Server.Host, user+"-pw", opts...)
}

// AuthorJID is the JID an author's posts come from.
func (s *Stack) AuthorJID(user string) string { return user + "@" + s.Server.ComponentDomain }

// service is one run of the gateway or the API, in this process or not.
type service struct {
	name   string
	url    string
	log    string           // log file of a separate process
	proc   *testenv.Process // the separate process, or nil
	exited <-chan struct{}
	err    func() error
	stop   func()
	once   sync.Once
}

// Stop stops the service and waits for it, once.
func (svc *service) Stop() { svc.once.Do(svc.stop) }

func (svc *service) tail() string {
	if svc.log == "" {
		return ""
	}
	return fmt.Sprintf("; log %s:\n%s", svc.log, testenv.Tail(svc.log))
}

// run starts the named service (gateway or api) with env, listening at
// listen, in this process or as a separate one.
func (s *Stack) run(t testenv.TB, name string, env map[string]string, listen string) *service {
	t.Helper()
	var svc *service
	if s.opts.Processes {
		svc = s.runProcess(t, name, env, listen)
	} else {
		svc = s.runInProcess(t, name, env)
	}
	t.Cleanup(svc.Stop)
	return svc
}

// runInProcess runs the service by app.RunGateway or app.RunAPI, configured
// from env as the binary would be.
func (s *Stack) runInProcess(t testenv.TB, name string, env map[string]string) *service {
	t.Helper()
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	log := s.log.With("proc", name)
	listening := make(chan string, 1)
	hook := func(a string) { listening <- a }
	var run func(context.Context) error
	switch name {
	case "gateway":
		cfg, err := app.ParseGateway(nil, lookup)
		if err != nil {
			t.Fatalf("testenv: gateway config: %v", err)
		}
		run = func(ctx context.Context) error {
			return app.RunGateway(ctx, cfg, log, app.GatewayHooks{MetricsListening: hook})
		}
	default:
		cfg, err := app.ParseAPI(nil, lookup)
		if err != nil {
			t.Fatalf("testenv: api config: %v", err)
		}
		run = func(ctx context.Context) error { return app.RunAPI(ctx, cfg, log, app.APIHooks{Listening: hook}) }
	}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan struct{})
	var runErr error
	go func() {
		defer close(exited)
		runErr = run(ctx)
	}()
	svc := &service{name: name, exited: exited, err: func() error { return runErr }}
	svc.stop = func() {
		cancel()
		<-exited
		if runErr != nil {
			t.Errorf("testenv: %s: %v", name, runErr)
		}
	}
	select {
	case a := <-listening:
		svc.url = "http://" + a
	case <-exited:
		t.Fatalf("testenv: %s: %v", name, runErr)
	case <-time.After(30 * time.Second):
		t.Fatalf("testenv: %s did not listen within 30s", name)
	}
	return svc
}

// runProcess runs the built binary with env on top of this process's
// environment less its STARLING_* variables; its log goes to Dir/<name>.log.
func (s *Stack) runProcess(t testenv.TB, name string, env map[string]string, listen string) *service {
	t.Helper()
	var vars []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STARLING_") {
			vars = append(vars, kv)
		}
	}
	for k, v := range env {
		vars = append(vars, k+"="+v)
	}
	logPath := logFile(s.dir(t), name)
	p := testenv.StartProcess(t, logPath, vars, s.bin+"/"+name)
	svc := &service{name: name, url: "http://" + listen, log: logPath, proc: p, exited: p.Exited(),
		err: func() error { return fmt.Errorf("%s", p.State()) }}
	svc.stop = func() {
		if err := p.Stop(); err != nil {
			t.Errorf("testenv: %s: %v", name, err)
		}
	}
	return svc
}

// tbWriter sends log lines to t.Logf.
type tbWriter struct {
	mu sync.Mutex
	t  testenv.TB
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
