package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"starling.dev/starling/fanout"
	"starling.dev/starling/internal/app"
	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/subscribers"
)

const adminToken = "e2e-admin-token"

// stack is the whole system on real servers: Redis, Prosody, NATS, and the
// gateway and API run by the same functions the binaries call.
type stack struct {
	redis  *testenv.Redis
	xmpp   testenv.XMPPServer
	srv    testenv.ServerInfo
	nats   *testenv.NATS
	js     jetstream.JetStream
	api    string // base URL
	ops    string // gateway's ops address
	store  *subscribers.RedisStore
	prefix string // Redis key prefix
	log    *slog.Logger
	gwCfg  app.Gateway
	// stopGateway stops the running gateway; it is safe to call twice.
	stopGateway func()
}

// servers are the XMPP servers every end-to-end test runs against.
var servers = []struct {
	name  string
	start func(testing.TB) testenv.XMPPServer
}{
	{"prosody", func(t testing.TB) testenv.XMPPServer { return testenv.StartProsody(t) }},
	{"ejabberd", func(t testing.TB) testenv.XMPPServer { return testenv.StartEjabberd(t) }},
}

// eachServer runs f as a subtest per XMPP server, on a fresh stack.
func eachServer(t *testing.T, f func(t *testing.T, s *stack)) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) { f(t, startStack(t, srv.start(t))) })
	}
}

// startStack starts the whole system against the XMPP server, configured
// from STARLING_* variables as the binaries are, with overrides on top.
func startStack(t testing.TB, server testenv.XMPPServer, overrides ...map[string]string) *stack {
	t.Helper()
	s := &stack{redis: testenv.StartRedis(t), xmpp: server, srv: server.Info(), nats: testenv.StartNATS(t)}
	js, err := jetstream.New(s.nats.Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	s.js = js
	s.log = slog.New(slog.NewTextHandler(&testWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	prefix := testenv.Prefix(t)
	s.prefix = prefix
	env := map[string]string{
		"STARLING_REDIS_URL": s.redis.URL, "STARLING_REDIS_PREFIX": prefix, "STARLING_NATS_URL": s.nats.URL,
		"STARLING_XMPP_DOMAIN": s.srv.ComponentDomain, "STARLING_METRICS_ADDR": "127.0.0.1:0", "STARLING_LOG_LEVEL": "debug",
		"STARLING_XMPP_ADDR": s.srv.ComponentAddr, "STARLING_XMPP_SECRET": s.srv.Secret, "STARLING_XMPP_PING_TO": s.srv.Host,
		"STARLING_HTTP_ADDR": "127.0.0.1:0", "STARLING_ADMIN_TOKEN": adminToken,
		// Generous command limits, so that only the tests of the limits meet them.
		"STARLING_COMMAND_RATE": "50", "STARLING_COMMAND_BURST": "50",
	}
	for _, o := range overrides {
		for k, v := range o {
			env[k] = v
		}
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if s.gwCfg, err = app.ParseGateway(nil, lookup); err != nil {
		t.Fatalf("gateway config: %v", err)
	}
	apiCfg, err := app.ParseAPI(nil, lookup)
	if err != nil {
		t.Fatalf("api config: %v", err)
	}
	if s.store, err = subscribers.NewRedisStore(s.redis.Client(t), subscribers.RedisConfig{Prefix: prefix}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	apiAddr, apiDone := make(chan string, 1), make(chan error, 1)
	go func() {
		apiDone <- app.RunAPI(ctx, apiCfg, s.log.With("proc", "api"), app.APIHooks{Listening: func(a string) { apiAddr <- a }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-apiDone; err != nil {
			t.Errorf("api: %v", err)
		}
	})
	select {
	case a := <-apiAddr:
		s.api = "http://" + a
	case err := <-apiDone:
		t.Fatalf("api: %v", err)
	}
	s.startGateway(t)
	return s
}

// startGateway runs the gateway until the test ends or stopGateway.
func (s *stack) startGateway(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	opsAddr, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- app.RunGateway(ctx, s.gwCfg, s.log.With("proc", "gateway"), app.GatewayHooks{MetricsListening: func(a string) { opsAddr <- a }})
	}()
	var once sync.Once
	s.stopGateway = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("gateway: %v", err)
			}
		})
	}
	t.Cleanup(s.stopGateway)
	select {
	case a := <-opsAddr:
		s.ops = "http://" + a
	case err := <-done:
		t.Fatalf("gateway: %v", err)
	}
	testenv.Eventually(t, 15*time.Second, s.componentConnected, "the gateway's component never connected to %s", s.srv.Name)
}

// restartGateway stops the gateway and starts it again, as a deploy would.
func (s *stack) restartGateway(t testing.TB) {
	t.Helper()
	s.stopGateway()
	s.startGateway(t)
}

// componentConnected asks the gateway's /readyz whether its XMPP link is up.
func (s *stack) componentConnected() bool {
	resp, err := http.Get(s.ops + "/readyz")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body struct {
		XMPP bool `json:"xmpp_connected"`
	}
	return resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&body) == nil && body.XMPP
}

// call makes a JSON request and decodes the JSON answer into out (if not nil).
func (s *stack) call(t testing.TB, method, path, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.api+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	if resp.StatusCode >= 300 {
		t.Logf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode
}

// createUser makes an author and returns their token.
func (s *stack) createUser(t testing.TB, name string) string {
	t.Helper()
	var out struct{ Token string }
	if code := s.call(t, "POST", "/v1/users", adminToken, map[string]string{"username": name, "display_name": strings.ToUpper(name[:1]) + name[1:]}, &out); code != 201 {
		t.Fatalf("create %s: status %d", name, code)
	}
	return out.Token
}

type status struct {
	ID        string `json:"id"`
	Author    string `json:"author"`
	Text      string `json:"text"`
	CreatedAt string `json:"created_at"`
}

// post publishes text as the token's owner and returns the accepted status.
func (s *stack) post(t testing.TB, token, text string) status {
	t.Helper()
	var st status
	if code := s.call(t, "POST", "/v1/statuses", token, map[string]string{"text": text}, &st); code != 202 {
		t.Fatalf("post %q: status %d", text, code)
	}
	return st
}

// drained waits until both stages have finished everything in JetStream.
func (s *stack) drained(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	testenv.Eventually(t, 15*time.Second, func() bool {
		for _, c := range []struct{ stream, consumer string }{
			{fanout.PostsStream, fanout.FanoutConsumer}, {fanout.DeliveriesStream, fanout.SenderConsumer},
		} {
			cons, err := s.js.Consumer(ctx, c.stream, c.consumer)
			if err != nil {
				return false
			}
			info, err := cons.Info(ctx)
			if err != nil || info.NumPending != 0 || info.NumAckPending != 0 {
				return false
			}
		}
		return true
	}, "the pipeline did not drain")
}

// client logs a new account in over c2s.
func (s *stack) client(t testing.TB, user string) *testenv.Client {
	t.Helper()
	s.xmpp.Register(t, user, user+"-pw")
	return testenv.DialClient(t, s.srv.C2SAddr, user, s.srv.Host, user+"-pw")
}

func (s *stack) authorJID(user string) string { return user + "@" + s.srv.ComponentDomain }

type testWriter struct {
	mu sync.Mutex
	t  testing.TB
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type profile struct {
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	JID         string `json:"jid"`
	Followers   int64  `json:"followers"`
	Posts       int64  `json:"posts"`
}

// profile reads an author's public profile through the API.
func (s *stack) profile(t testing.TB, user string) profile {
	t.Helper()
	var p profile
	if code := s.call(t, "GET", "/v1/users/"+user, "", nil, &p); code != 200 {
		t.Fatalf("profile of %s: status %d", user, code)
	}
	return p
}
