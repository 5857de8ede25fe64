package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Prosody is a Prosody child process with one virtual host and one component.
type Prosody struct {
	ServerInfo

	dir  string
	cfg  string
	bin  string
	ctl  string
	proc *process
	t    TB
	opts serverOptions
}

// ServerOption changes how StartProsody or StartEjabberd configures the
// server. Every option is additive: without options both start as before.
type ServerOption func(*serverOptions)

type serverOptions struct {
	components []string // extra component domains, with the same secret
	pubsub     string   // Prosody: domain of a mod_pubsub component
	admins     []string // Prosody: server admins (bare JIDs)
	dir        string   // Prosody: a lasting folder for config and data
	c2s, comp  int      // fixed ports; 0 means a free one
	secret     string   // the component secret; "" means "test-secret"
}

func collect(opts []ServerOption) serverOptions {
	var o serverOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// WithComponents declares more XEP-0114 component domains on the server,
// each accepting the server's component secret (ServerInfo.Secret) on the
// same component port, e.g. a "sink.localhost" that a benchmark reads.
func WithComponents(domains ...string) ServerOption {
	return func(o *serverOptions) { o.components = append(o.components, domains...) }
}

// WithPubSub (Prosody only) adds `Component domain "pubsub"`: Prosody's own
// XEP-0060 service (mod_pubsub) with its default file storage, nodes in
// DataDir()/<encoded domain>/pubsub_nodes/<node>.dat, loaded at start. Note
// that Prosody 0.12 re-serializes the whole node, every subscriber
// included, on each subscribe (with memory storage too), so N subscribe IQs
// cost O(N²). admins become server admins (global `admins`), which
// mod_pubsub makes owners of every node, so they may create and publish.
func WithPubSub(domain string, admins ...string) ServerOption {
	return func(o *serverOptions) {
		o.pubsub = domain
		o.admins = append(o.admins, admins...)
	}
}

// WithDir (Prosody only) keeps the config, the data and the log in dir
// instead of a temporary folder, so accounts outlive the process (make run).
func WithDir(dir string) ServerOption { return func(o *serverOptions) { o.dir = dir } }

// WithPorts fixes the c2s and component ports instead of free ones.
func WithPorts(c2s, component int) ServerOption {
	return func(o *serverOptions) { o.c2s, o.comp = c2s, component }
}

// WithSecret sets the component secret (default "test-secret").
func WithSecret(secret string) ServerOption { return func(o *serverOptions) { o.secret = secret } }

// port is want, or a free port when want is 0.
func port(t TB, want int) int {
	if want > 0 {
		return want
	}
	return FreePort(t)
}

// StartProsody writes a config under a temporary folder and starts Prosody in
// the foreground on free loopback ports, without TLS and with plain logins.
func StartProsody(t TB, opts ...ServerOption) *Prosody {
	t.Helper()
	p := &Prosody{
		ServerInfo: ServerInfo{
			Name:            "prosody",
			Host:            "localhost",
			ComponentDomain: "microblog.localhost",
			Secret:          "test-secret",
		},
		bin:  need(t, "prosody", "prosody"),
		ctl:  need(t, "prosodyctl", "prosody"),
		t:    t,
		opts: collect(opts),
	}
	if p.opts.secret != "" {
		p.Secret = p.opts.secret
	}
	if p.dir = p.opts.dir; p.dir == "" {
		p.dir = t.TempDir()
	}
	c2s, comp := port(t, p.opts.c2s), port(t, p.opts.comp)
	p.C2SAddr, p.ComponentAddr = addr(c2s), addr(comp)
	p.cfg = filepath.Join(p.dir, "prosody.cfg.lua")
	if err := os.MkdirAll(filepath.Join(p.dir, "data"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.cfg, []byte(p.config(c2s, comp)), 0o644); err != nil {
		t.Fatal(err)
	}
	p.start(t)
	t.Cleanup(func() { _ = p.proc.stop() })
	return p
}

func (p *Prosody) config(c2s, comp int) string {
	return fmt.Sprintf(`-- written by internal/testenv
run_as_root = true
pidfile = %[1]q
data_path = %[2]q
log = { { levels = { min = "info" }, to = "console" } }
interfaces = { "127.0.0.1" }
c2s_ports = { %[3]d }
component_ports = { %[4]d }
component_interfaces = { "127.0.0.1" }
s2s_ports = { }
modules_disabled = { "s2s"; "tls" }
modules_enabled = { "roster"; "saslauth"; "disco"; "ping"; "presence"; "offline" }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
network_settings = { min_wait = 0.00001 }
%[8]s
VirtualHost %[5]q

Component %[6]q
    component_secret = %[7]q
`, filepath.Join(p.dir, "prosody.pid"), filepath.Join(p.dir, "data"), c2s, comp, p.Host, p.ComponentDomain, p.Secret, p.extraGlobal()) + p.extraComponents()
}

// extraGlobal is the global part of the options (before any host).
func (p *Prosody) extraGlobal() string {
	if len(p.opts.admins) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("admins = {")
	for _, a := range p.opts.admins {
		fmt.Fprintf(&b, " %q;", a)
	}
	b.WriteString(" }\n")
	return b.String()
}

// extraComponents declares the components the options ask for.
func (p *Prosody) extraComponents() string {
	var b strings.Builder
	for _, d := range p.opts.components {
		fmt.Fprintf(&b, "\nComponent %q\n    component_secret = %q\n", d, p.Secret)
	}
	if p.opts.pubsub != "" {
		fmt.Fprintf(&b, "\nComponent %q \"pubsub\"\n", p.opts.pubsub)
	}
	return b.String()
}

// ComponentAddrOf returns where the component for domain connects: every
// component shares Prosody's one component port.
func (p *Prosody) ComponentAddrOf(string) string { return p.ComponentAddr }

// DataDir is Prosody's data_path, where its internal storage keeps one Lua
// file per user and store (data/<host>/<store>/<user>.dat).
func (p *Prosody) DataDir() string { return filepath.Join(p.dir, "data") }

func (p *Prosody) start(t TB) {
	t.Helper()
	log := filepath.Join(p.dir, fmt.Sprintf("prosody-%d.log", time.Now().UnixNano()))
	if p.opts.dir != "" { // a lasting folder keeps one log, not one per start
		log = filepath.Join(p.dir, "prosody.log")
	}
	p.proc = startProcess(t, log, p.bin, "-F", "--config", p.cfg)
	waitTCP(t, p.C2SAddr, 15*time.Second, p.proc.exited, log)
	waitTCP(t, p.ComponentAddr, 15*time.Second, p.proc.exited, log)
}

// Register creates (or re-creates) an account on the virtual host.
func (p *Prosody) Register(t TB, user, password string) {
	t.Helper()
	out, err := exec.Command(p.ctl, "--config", p.cfg, "register", user, p.Host, password).CombinedOutput()
	if err != nil {
		t.Fatalf("testenv: prosodyctl register %s: %v\n%s", user, err, out)
	}
}

// Restart stops Prosody and starts it again on the same ports with the same
// data, as an operator's restart would.
func (p *Prosody) Restart(t TB) {
	t.Helper()
	if err := p.proc.stop(); err != nil {
		t.Fatal(err)
	}
	p.start(t)
}

// Log returns what the current Prosody process has logged.
func (p *Prosody) Log() string { return tail(p.proc.log) }

// Exited is closed when the server process has exited.
func (p *Prosody) Exited() <-chan struct{} { return p.proc.exited }
