package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// S2SPeer says how a real XMPP server started by StartProsodyS2S or
// StartEjabberdS2S federates with a gateway in s2s mode.
type S2SPeer struct {
	// Domain is the gateway's domain, e.g. "microblog.test" (a .test name:
	// resolvers answer others slowly). The server reaches it through DNS.
	Domain string
	// Port is where the gateway listens for server-to-server streams.
	Port int
	// DNS is the test DNS server the XMPP server resolves through; the
	// gateway's SRV record is added to it (target localhost, which every
	// resolver knows).
	DNS *DNS
	// Host is the server's own virtual host; "" means "localhost".
	Host string
	// TLS makes the server offer and require STARTTLS on its streams
	// with a self-signed certificate (it accepts the gateway's
	// self-signed one: dialback authenticates); without it the server
	// has no TLS at all.
	TLS bool
	// Limited leaves the server's default limits on inbound s2s traffic
	// in force (Prosody's mod_limits: 30 KiB/s) instead of exempting the
	// gateway's domain, as its operators would be told to do.
	Limited bool
	// Components are XEP-0114 component domains the server declares
	// (secret "test-secret", on ComponentAddr): remote domains of the
	// gateway too, since the server serves them over s2s (a sink there
	// stands in for many followers).
	Components []string
}

// S2SServer is a real XMPP server that federates with the gateway. Its
// ServerInfo's ComponentDomain is the gateway's domain (the domain the
// gateway serves, though not as a component of this server).
type S2SServer interface {
	XMPPServer
	// S2SAddr is where the server accepts server-to-server streams.
	S2SAddr() string
}

func (p S2SPeer) host() string {
	if p.Host == "" {
		return "localhost"
	}
	return p.Host
}

// ProsodyS2S is a Prosody that federates with the gateway.
type ProsodyS2S struct {
	*Prosody
	s2sAddr string
}

var _ S2SServer = (*ProsodyS2S)(nil)

// S2SAddr is where Prosody accepts server-to-server streams.
func (p *ProsodyS2S) S2SAddr() string { return p.s2sAddr }

// StartProsodyS2S starts Prosody with server-to-server streams and
// dialback, resolving the gateway's domain through peer.DNS (which needs
// Debian's lua-unbound: Prosody's own resolver reads only
// /etc/resolv.conf). Clients log in without TLS, as with StartProsody.
func StartProsodyS2S(t TB, peer S2SPeer) *ProsodyS2S {
	t.Helper()
	needLuaUnbound(t)
	host := peer.host()
	p := &Prosody{
		ServerInfo: ServerInfo{Name: "prosody", Host: host, ComponentDomain: peer.Domain, Secret: "test-secret"},
		bin:        need(t, "prosody", "prosody"),
		ctl:        need(t, "prosodyctl", "prosody"),
		t:          t,
		dir:        t.TempDir(),
	}
	c2s, comp, s2s := FreePort(t), FreePort(t), FreePort(t)
	p.C2SAddr, p.ComponentAddr = addr(c2s), addr(comp)
	p.cfg = filepath.Join(p.dir, "prosody.cfg.lua")
	for _, sub := range []string{"data", "certs"} {
		if err := os.MkdirAll(filepath.Join(p.dir, sub), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	tlsConf := `modules_disabled = { "tls" }
s2s_require_encryption = false`
	if peer.TLS {
		cert := SelfSignedCert(t, filepath.Join(p.dir, "certs"), host)
		tlsConf = fmt.Sprintf(`ssl = { certificate = %q; key = %q }
s2s_require_encryption = true`, cert.CertFile, cert.KeyFile)
	}
	limits := fmt.Sprintf("unlimited_jids = { %q }", peer.Domain)
	if peer.Limited {
		limits = ""
	}
	cfg := fmt.Sprintf(`-- written by internal/testenv (s2s peer)
run_as_root = true
pidfile = %[1]q
data_path = %[2]q
log = { { levels = { min = "info" }, to = "console" }, { levels = { min = "debug" }, to = "file", filename = %[12]q } }
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { %[3]d }
s2s_ports = { %[4]d }
s2s_interfaces = { "127.0.0.1" }
component_ports = { %[5]d }
component_interfaces = { "127.0.0.1" }
modules_enabled = { "roster"; "saslauth"; "disco"; "ping"; "presence"; "offline"; "dialback"; "limits"; "tls" }
%[6]s
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
s2s_secure_auth = false
%[7]s
unbound = { resolvconf = false; hoststxt = false; forward = "127.0.0.1@%[8]d";
            options = { ["local-zone:"] = %[9]q } }
authentication = "internal_plain"
network_settings = { min_wait = 0.00001 }

VirtualHost %[10]q

-- Unused: testenv waits for the component port of every Prosody.
Component %[11]q
    component_secret = "test-secret"
`, filepath.Join(p.dir, "prosody.pid"), filepath.Join(p.dir, "data"), c2s, s2s, comp, tlsConf, limits,
		peer.DNS.Port, peer.Domain+". transparent", host, "unused."+host, filepath.Join(p.dir, "debug.log"))
	for _, d := range peer.Components {
		// mod_limits exempts unlimited_jids only on hosts that load it,
		// and components do not inherit it.
		cfg += fmt.Sprintf("\nComponent %q\n    component_secret = \"test-secret\"\n    modules_enabled = { \"limits\" }\n", d)
	}
	if err := os.WriteFile(p.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	peer.DNS.AddSRV(t, peer.Domain, "localhost", peer.Port)
	p.start(t)
	t.Cleanup(func() { _ = p.proc.stop() })
	ps := &ProsodyS2S{Prosody: p, s2sAddr: addr(s2s)}
	waitTCP(t, ps.s2sAddr, 15*time.Second, p.proc.exited, p.proc.log)
	return ps
}

// DebugLog returns the tail of Prosody's debug log: every stanza on every
// stream, for failure messages.
func (p *ProsodyS2S) DebugLog() string { return tail(filepath.Join(p.dir, "debug.log")) }

// DebugLogPath is the file of Prosody's debug log.
func (p *ProsodyS2S) DebugLogPath() string { return filepath.Join(p.dir, "debug.log") }

// needLuaUnbound fails the test unless Prosody can use libunbound, which
// is how it is pointed at the test DNS server.
func needLuaUnbound(t TB) {
	t.Helper()
	out, err := exec.Command("lua5.4", "-e", `require "lunbound"`).CombinedOutput()
	if err != nil {
		t.Fatalf("testenv: Prosody needs lua-unbound to resolve the gateway's domain through the test DNS server (%v: %s); install it with: apt-get install -y lua-unbound",
			err, strings.TrimSpace(firstLine(string(out))))
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// EjabberdS2S is an ejabberd that federates with the gateway.
type EjabberdS2S struct {
	*Ejabberd
	s2sAddr string
}

var _ S2SServer = (*EjabberdS2S)(nil)

// S2SAddr is where ejabberd accepts server-to-server streams.
func (e *EjabberdS2S) S2SAddr() string { return e.s2sAddr }

// StartEjabberdS2S starts ejabberd with server-to-server streams and
// dialback (mod_s2s_dialback), resolving the gateway's domain through
// peer.DNS: Erlang's resolver asks it for the SRV record (the inetrc in
// ejabberd's folder), and the record's target, localhost, is resolved by
// the system. After a failed attempt ejabberd leaves a domain alone for
// minutes, so a test that makes it fail needs a fresh ejabberd.
func StartEjabberdS2S(t TB, peer S2SPeer) *EjabberdS2S {
	t.Helper()
	host := peer.host()
	e := &Ejabberd{
		ServerInfo: ServerInfo{Name: "ejabberd", Host: host, ComponentDomain: peer.Domain, Secret: "test-secret"},
		ctl:        need(t, "ejabberdctl", "ejabberd"),
	}
	uid, gid := ejabberdUser(t)
	e.dir = ejabberdDir(t)
	c2s, comp, s2s, dist := FreePort(t), FreePort(t), FreePort(t), FreePort(t)
	e.C2SAddr, e.ComponentAddr = addr(c2s), addr(comp)
	e.node = "starling_" + randomHex(t, 6) + "@localhost"
	tlsConf := "certfiles: []\ns2s_use_starttls: false\n"
	if peer.TLS {
		cert := SelfSignedCert(t, e.dir, host)
		tlsConf = fmt.Sprintf("certfiles:\n  - %q\n  - %q\ns2s_use_starttls: required\n", cert.CertFile, cert.KeyFile)
	}
	files := map[string]string{
		"ejabberd.yml": fmt.Sprintf(`# written by internal/testenv (s2s peer)
hosts:
  - %[1]q
loglevel: info
auth_method: internal
%[2]slisten:
  -
    port: %[3]d
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: false
    starttls_required: false
    shaper: none
  -
    port: %[4]d
    ip: "127.0.0.1"
    module: ejabberd_service
    shaper: none
    hosts:
      %[5]q:
        password: "test-secret"
%[7]s  -
    port: %[6]d
    ip: "127.0.0.1"
    module: ejabberd_s2s_in
    shaper: none
modules:
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}
  mod_offline: {}
  mod_stream_mgmt: {}
  mod_s2s_dialback: {}
  mod_admin_extra: {}
`, host, tlsConf, c2s, comp, "unused."+host, s2s, ejabberdComponents(peer.Components)),
		"ejabberdctl.cfg": e.ctlConfig(dist, randomHex(t, 16)),
		// Erlang's resolver asks the test DNS server; names in the
		// hosts file and localhost resolve as usual.
		"inetrc": fmt.Sprintf("{lookup,[\"file\",\"native\"]}.\n{host,{127,0,0,1}, [\"localhost\",\"hostalias\"]}.\n{resolv_conf, \"\"}.\n{nameserver, {127,0,0,1}, %d}.\n", peer.DNS.Port),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(e.dir, name), []byte(body), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	for _, sub := range []string{"spool", "logs"} {
		if err := os.Mkdir(filepath.Join(e.dir, sub), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	chownTree(t, e.dir, uid, gid)
	peer.DNS.AddSRV(t, peer.Domain, "localhost", peer.Port)
	t.Cleanup(func() {
		if err := e.stop(); err != nil {
			t.Errorf("%v", err)
		}
	})
	e.start(t)
	es := &EjabberdS2S{Ejabberd: e, s2sAddr: addr(s2s)}
	waitTCP(t, es.s2sAddr, 30*time.Second, e.proc.exited, e.proc.log)
	return es
}

// ejabberdComponents lists more domains of the service listener.
func ejabberdComponents(domains []string) string {
	var b strings.Builder
	for _, d := range domains {
		fmt.Fprintf(&b, "      %q:\n        password: \"test-secret\"\n", d)
	}
	return b.String()
}

// ejabberdUser returns the ejabberd user's ids, failing the test when it
// cannot be used.
func ejabberdUser(t TB) (uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("testenv: ejabberdctl runs ejabberd as the ejabberd user and only root may ask it to; run the tests as root")
	}
	usr, err := user.Lookup("ejabberd")
	if err != nil {
		t.Fatalf("testenv: no ejabberd user (%v); reinstall it with: apt-get install --reinstall -y ejabberd", err)
	}
	uid, _ = strconv.Atoi(usr.Uid)
	gid, _ = strconv.Atoi(usr.Gid)
	return uid, gid
}

// chownTree gives dir and everything in it to uid:gid.
func chownTree(t TB, dir string, uid, gid int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
	if err != nil {
		t.Fatalf("testenv: chown %s to ejabberd: %v", dir, err)
	}
}

// StartAnsweringSink is StartSink for a sink that answers the IQ pings
// sent to its domain (with an empty result), as a remote server's domain
// must in s2s mode, where the gateway confirms each chunk with a ping to the
// domain its messages went to.
func StartAnsweringSink(t TB, addr, secret, domain string) *Sink {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel) // not before: see DialComponent
	conn, err := DialComponent(ctx, addr, domain, secret)
	if err != nil {
		t.Fatalf("testenv: sink: %v", err)
	}
	s := &Sink{Domain: domain, conn: conn, Scan: NewScanner("<message", "<iq"), done: make(chan struct{})}
	var answer []byte
	s.Scan.OnIQ(func(tag []byte) { // on the reading goroutine: the only writer
		id, from, typ := tagAttr(tag, "id"), tagAttr(tag, "from"), tagAttr(tag, "type")
		if typ != "get" || id == "" || from == "" {
			return
		}
		answer = fmt.Appendf(answer[:0], `<iq type="result" id="%s" from="%s" to="%s"/>`, id, domain, from)
		_, _ = conn.Write(answer)
	})
	go func() {
		defer close(s.done)
		_ = s.Scan.Pump(quickAckReader(conn))
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		<-s.done
	})
	return s
}

// tagAttr returns the value of attribute name in a start tag written by a
// server (quoted with ' or "; values taken as they are, escapes included).
func tagAttr(tag []byte, name string) string {
	for _, q := range []string{`"`, "'"} {
		key := []byte(" " + name + "=" + q)
		i := bytes.Index(tag, key)
		if i < 0 {
			continue
		}
		rest := tag[i+len(key):]
		if j := bytes.IndexByte(rest, q[0]); j >= 0 {
			return string(rest[:j])
		}
	}
	return ""
}
