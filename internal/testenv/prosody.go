package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
}

// StartProsody writes a config under a temporary folder and starts Prosody in
// the foreground on free loopback ports, without TLS and with plain logins.
func StartProsody(t TB) *Prosody {
	t.Helper()
	p := &Prosody{
		ServerInfo: ServerInfo{
			Name:            "prosody",
			Host:            "localhost",
			ComponentDomain: "microblog.localhost",
			Secret:          "test-secret",
		},
		bin: need(t, "prosody", "prosody"),
		ctl: need(t, "prosodyctl", "prosody"),
		dir: t.TempDir(),
		t:   t,
	}
	c2s, comp := FreePort(t), FreePort(t)
	p.C2SAddr, p.ComponentAddr = addr(c2s), addr(comp)
	p.cfg = filepath.Join(p.dir, "prosody.cfg.lua")
	if err := os.MkdirAll(filepath.Join(p.dir, "data"), 0o755); err != nil {
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

VirtualHost %[5]q

Component %[6]q
    component_secret = %[7]q
`, filepath.Join(p.dir, "prosody.pid"), filepath.Join(p.dir, "data"), c2s, comp, p.Host, p.ComponentDomain, p.Secret)
}

func (p *Prosody) start(t TB) {
	t.Helper()
	log := filepath.Join(p.dir, fmt.Sprintf("prosody-%d.log", time.Now().UnixNano()))
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
