// Command run is `make run`: Starling on this machine, from a clean clone.
//
// It starts testenv's Stack in separate-process mode, with lasting state in
// ./run/: Redis with an append-only file in run/redis, Prosody's accounts in
// run/prosody, JetStream in run/nats, the gateway and the API built into
// run/bin and logging to run/gateway.log and run/api.log, and secrets made
// once into run/secrets.env (delete it, or `make clean`, to start over). It
// takes the default ports (c2s 5222, component 5347, Redis 6379, NATS 4222,
// HTTP 8080, gateway metrics 9464), or the next free one when a default is
// taken, and says so; it never reuses a Redis or NATS that is already
// running. It registers bob@localhost, creates the author alice through the
// API, prints how to try it, and stays in the foreground: Ctrl-C, SIGTERM or
// SIGHUP stops everything, newest first, and leaves nothing listening. If a
// part stops on its own, the rest are stopped and it exits 1.
//
//	go run ./internal/run [-v]
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/internal/testenv/stack"
)

const (
	xmppHost   = "localhost" // Prosody's VirtualHost
	demoUser   = "bob"       // the demo Jabber account: bob@localhost
	author     = "alice"     // the demo author: alice@microblog.localhost
	authorName = "Alice"
)

func main() {
	verbose := flag.Bool("v", false, "log what the stack's helpers log")
	flag.Parse()
	os.Exit(run(*verbose))
}

func say(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func run(verbose bool) int {
	root, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 1
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		fmt.Fprintln(os.Stderr, "run: start me from the repository's root (make run)")
		return 1
	}
	dir := filepath.Join(root, "run")
	for _, d := range []string{dir, filepath.Join(dir, "redis"), filepath.Join(dir, "prosody"), filepath.Join(dir, "nats")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			fmt.Fprintln(os.Stderr, "run:", err)
			return 1
		}
	}
	// One make run at a time per checkout: they would share run/. The
	// lock dies with the process; `make clean` checks it too.
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err == nil {
		err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "run: another 'make run' is already running from %s (it holds run/.lock): %v\n", root, err)
		return 1
	}
	defer lock.Close()

	sec, err := loadSecrets(filepath.Join(dir, "secrets.env"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 1
	}
	adminToken, err := sec.ensure("STARLING_ADMIN_TOKEN", 24)
	if err == nil {
		_, err = sec.ensure("STARLING_XMPP_SECRET", 24)
	}
	if err == nil {
		_, err = sec.ensure("DEMO_XMPP_PASSWORD", 8)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 1
	}

	ports := &picker{used: map[int]bool{}}
	c2s, comp := ports.pick("XMPP c2s", 5222), ports.pick("XMPP component", 5347)
	redisPort, natsPort := ports.pick("Redis", 6379), ports.pick("NATS", 4222)
	httpPort, metricsPort := ports.pick("HTTP API", 8080), ports.pick("gateway metrics", 9464)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	t := testenv.NewProgram("run", verbose)
	level := os.Getenv("STARLING_LOG_LEVEL")
	if level == "" {
		level = "info"
	}
	say("building the gateway and the API into run/bin, starting redis, prosody, NATS, the gateway and the API")
	st := stack.StartStack(t, stack.Options{
		Processes:  true,
		Dir:        dir,
		AdminToken: adminToken,
		Prefix:     "starling:",
		LogLevel:   level,
		Redis:      testenv.RedisOptions{Port: redisPort, Dir: filepath.Join(dir, "redis"), AppendOnly: true},
		NATS:       testenv.NATSOptions{Port: natsPort, StoreDir: filepath.Join(dir, "nats")},
		ProsodyOptions: []testenv.ServerOption{
			testenv.WithDir(filepath.Join(dir, "prosody")), testenv.WithPorts(c2s, comp),
			testenv.WithSecret(sec.get("STARLING_XMPP_SECRET")),
		},
		HTTPPort:    httpPort,
		MetricsPort: metricsPort,
	})
	defer t.Stop()
	if ctx.Err() != nil {
		say("stopping everything")
		return 0
	}
	// prosodyctl register creates the account, or sets the password of an
	// existing one.
	st.XMPP.Register(t, demoUser, sec.get("DEMO_XMPP_PASSWORD"))
	say("Jabber account %s@%s is registered", demoUser, xmppHost)
	aliceToken, err := ensureAuthor(st, sec)
	if err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 1
	}
	printTryIt(st, sec.get("DEMO_XMPP_PASSWORD"), aliceToken, metricsPort)

	if name := st.Wait(ctx); name != "" {
		fmt.Fprintf(os.Stderr, "run: %s stopped unexpectedly (see its log in run/); stopping the rest\n", name)
		return 1
	}
	fmt.Println()
	say("stopping everything")
	t.Stop()
	say("all stopped")
	return 0
}

// ensureAuthor creates alice, or reuses (or, failing that, renews) the token
// stored when she was created.
func ensureAuthor(st *stack.Stack, sec *secrets) (string, error) {
	var out struct{ Token string }
	code, err := st.Call("POST", "/v1/users", st.AdminToken, map[string]string{"username": author, "display_name": authorName}, &out)
	switch {
	case code == 201:
		say("created the author %s (token stored in run/secrets.env)", author)
		return out.Token, sec.set("ALICE_TOKEN", out.Token)
	case code != 409:
		return "", fmt.Errorf("creating %s: %w", author, err)
	}
	// Check the stored token without posting: an empty post is refused
	// with 422 after authentication, and with 401 when the token is wrong.
	if tok := sec.get("ALICE_TOKEN"); tok != "" {
		if code, _ := st.Call("POST", "/v1/statuses", tok, map[string]string{"text": ""}, nil); code == 422 {
			say("the author %s already exists; reusing her token from run/secrets.env", author)
			return tok, nil
		}
	}
	if _, err := st.Call("POST", "/v1/users/"+author+"/token", st.AdminToken, nil, &out); err != nil || out.Token == "" {
		return "", fmt.Errorf("%s exists and her token could not be renewed: %v", author, err)
	}
	say("the author %s already exists; issued her a new token (stored in run/secrets.env)", author)
	return out.Token, sec.set("ALICE_TOKEN", out.Token)
}

func printTryIt(st *stack.Stack, password, token string, metricsPort int) {
	_, c2sPort, _ := net.SplitHostPort(st.Server.C2SAddr)
	fmt.Printf(`
================================ Starling is running ================================
 Jabber account   %[1]s@%[2]s   password: %[3]s
                  server 127.0.0.1, port %[4]s, plain authentication, no TLS/STARTTLS
 Follow alice     send the message  follow %[5]s  to  %[6]s
                  (follows are kept in run/redis across restarts; `+"`make clean`"+` forgets them)
 Post as alice    curl -sS -X POST %[7]s/v1/statuses \
                    -H 'Authorization: Bearer %[8]s' \
                    -H 'Content-Type: application/json' -d '{"text":"Hello from Starling"}'
 Web page         %[7]s/u/%[5]s  (live; the start page is %[7]s/)
 API              %[7]s  (admin token: STARLING_ADMIN_TOKEN in run/secrets.env)
 Gateway metrics  http://127.0.0.1:%[9]d/metrics
 Logs             run/api.log run/gateway.log run/redis/redis.log
                  run/prosody/prosody.log

 Ctrl-C stops everything.
=====================================================================================
`, demoUser, xmppHost, password, c2sPort, author, st.Server.ComponentDomain, st.API, token, metricsPort)
}

// picker chooses ports: the default when free, else the next free one.
type picker struct{ used map[int]bool }

func (p *picker) pick(label string, want int) int {
	for port := want; port < want+200; port++ {
		if p.used[port] || !free(port) {
			continue
		}
		if port != want {
			say("port %d (%s) is already taken; using %d instead", want, label, port)
		}
		p.used[port] = true
		return port
	}
	fmt.Fprintf(os.Stderr, "run: no free port for %s in %d..%d\n", label, want, want+199)
	os.Exit(1)
	return 0
}

// free tells whether 127.0.0.1:port can be listened on, which also fails
// when something listens on every address at that port.
func free(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// secrets is run/secrets.env: KEY=VALUE lines, mode 600, made once and
// reused by every make run.
type secrets struct {
	path string
	vals map[string]string
	keys []string
}

func loadSecrets(path string) (*secrets, error) {
	s := &secrets{path: path, vals: map[string]string{}}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		if _, seen := s.vals[k]; !seen {
			s.keys = append(s.keys, k)
		}
		s.vals[k] = v
	}
	return s, sc.Err()
}

func (s *secrets) get(key string) string { return s.vals[key] }

// ensure returns the secret key, generating n random bytes (hex) once.
func (s *secrets) ensure(key string, n int) (string, error) {
	if v := s.vals[key]; v != "" {
		return v, nil
	}
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), s.set(key, hex.EncodeToString(b))
}

// set stores the secret and rewrites the file (atomically, mode 600).
func (s *secrets) set(key, value string) error {
	if _, seen := s.vals[key]; !seen {
		s.keys = append(s.keys, key)
	}
	s.vals[key] = value
	var b strings.Builder
	b.WriteString("# Generated by make run (internal/run) and reused by every run. Delete to regenerate.\n")
	for _, k := range s.keys {
		fmt.Fprintf(&b, "%s=%s\n", k, s.vals[k])
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.path)
}
