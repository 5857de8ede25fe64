package e2e

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"starling.dev/starling/internal/testenv"
	teststack "starling.dev/starling/internal/testenv/stack"
	"starling.dev/starling/subscribers"
)

const adminToken = "e2e-admin-token"

// stack is testenv's Stack with the short names these tests were written
// with: the whole system on real servers, the gateway and API run in this
// process by the same functions the binaries call.
type stack struct {
	*teststack.Stack
	redis  *testenv.Redis
	xmpp   testenv.XMPPServer
	srv    testenv.ServerInfo
	js     jetstream.JetStream
	store  *subscribers.RedisStore
	prefix string // Redis key prefix
	api    string // base URL
	ops    string // gateway's ops address
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
	env := map[string]string{
		// Generous command limits, so that only the tests of the limits meet them.
		"STARLING_COMMAND_RATE": "50", "STARLING_COMMAND_BURST": "50",
	}
	for _, o := range overrides {
		maps.Copy(env, o)
	}
	st := teststack.StartStack(t, teststack.Options{XMPP: server, Env: env, AdminToken: adminToken})
	return &stack{Stack: st, redis: st.Redis, xmpp: st.XMPP, srv: st.Server, js: st.JS, store: st.Graph,
		prefix: st.Prefix, api: st.API, ops: st.Gateway.Ops}
}

// restartGateway stops the gateway and starts it again, as a deploy would.
func (s *stack) restartGateway(t testing.TB) {
	t.Helper()
	s.RestartGateway(t)
	s.ops = s.Gateway.Ops
}

// call makes a JSON request and decodes the JSON answer into out (if not nil).
func (s *stack) call(t testing.TB, method, path, token string, body any, out any) int {
	t.Helper()
	code, err := s.Call(method, path, token, body, out)
	switch {
	case code == 0 || err != nil && code < 300:
		t.Fatalf("%v", err)
	case err != nil:
		t.Logf("%v", err)
	}
	return code
}

// createUser makes an author and returns their token.
func (s *stack) createUser(t testing.TB, name string) string {
	t.Helper()
	return s.CreateUser(t, name, strings.ToUpper(name[:1])+name[1:])
}

type status = teststack.Status

// post publishes text as the token's owner and returns the accepted status.
func (s *stack) post(t testing.TB, token, text string) status {
	t.Helper()
	return s.Post(t, token, text)
}

// drained waits until both stages have finished everything in JetStream.
func (s *stack) drained(t testing.TB) {
	t.Helper()
	s.Drained(t, 15*time.Second)
}

// client logs a new account in over c2s.
func (s *stack) client(t testing.TB, user string) *testenv.Client {
	t.Helper()
	return s.Client(t, user)
}

func (s *stack) authorJID(user string) string { return s.AuthorJID(user) }

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

// componentConnected asks the gateway's /readyz whether its XMPP link is up.
func (s *stack) componentConnected() bool { return s.ComponentConnected() }
