package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Ejabberd is an ejabberd child process (Debian's ejabberd 23.01, driven by
// ejabberdctl) with one virtual host and one component, in a folder of its own.
type Ejabberd struct {
	ServerInfo

	dir    string // owned by the ejabberd user: config, spool/, logs/
	ctl    string // path of ejabberdctl
	node   string // Erlang node name, unique per StartEjabberd
	starts int
	proc   *process
	opts   serverOptions
	// extra is the component listener of each WithComponents domain.
	extra map[string]string
}

var _ XMPPServer = (*Ejabberd)(nil)

// StartEjabberd writes a config under a fresh folder and starts ejabberd in
// the foreground on free loopback ports, without TLS and with plain logins.
// It returns once ejabberd reports itself started, so Register works at once.
// ejabberdctl switches to the ejabberd user, so the tests must run as root.
// WithComponents adds more component domains to the service listener;
// WithPorts and WithSecret apply; WithPubSub and WithDir are Prosody's
// only and ignored here.
func StartEjabberd(t TB, opts ...ServerOption) *Ejabberd {
	t.Helper()
	e := &Ejabberd{
		ServerInfo: ServerInfo{
			Name:            "ejabberd",
			Host:            "localhost",
			ComponentDomain: "microblog.localhost",
			Secret:          "test-secret",
		},
		ctl:  need(t, "ejabberdctl", "ejabberd"),
		opts: collect(opts),
	}
	if os.Geteuid() != 0 {
		t.Fatalf("testenv: ejabberdctl runs ejabberd as the ejabberd user and only root may ask it to; run the tests as root")
	}
	usr, err := user.Lookup("ejabberd")
	if err != nil {
		t.Fatalf("testenv: no ejabberd user (%v); reinstall it with: apt-get install --reinstall -y ejabberd", err)
	}
	uid, _ := strconv.Atoi(usr.Uid)
	gid, _ := strconv.Atoi(usr.Gid)

	e.dir = ejabberdDir(t)
	if e.opts.secret != "" {
		e.Secret = e.opts.secret
	}
	c2s, comp, dist := port(t, e.opts.c2s), port(t, e.opts.comp), FreePort(t)
	e.C2SAddr, e.ComponentAddr = addr(c2s), addr(comp)
	e.extra = map[string]string{}
	for _, d := range e.opts.components {
		e.extra[d] = addr(FreePort(t))
	}
	e.node = "starling_" + randomHex(t, 6) + "@localhost"

	inetrc, err := os.ReadFile("/etc/ejabberd/inetrc")
	if err != nil {
		// Debian's file, spelled out: resolve localhost without DNS.
		inetrc = []byte("{lookup,[\"file\",\"native\"]}.\n{host,{127,0,0,1}, [\"localhost\",\"hostalias\"]}.\n{file, resolv, \"/etc/resolv.conf\"}.\n")
	}
	files := map[string]string{
		"ejabberd.yml":    e.config(c2s, comp),
		"ejabberdctl.cfg": e.ctlConfig(dist, randomHex(t, 16)),
		"inetrc":          string(inetrc),
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
	err = filepath.WalkDir(e.dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
	if err != nil {
		t.Fatalf("testenv: chown %s to ejabberd: %v", e.dir, err)
	}

	t.Cleanup(func() {
		if err := e.stop(); err != nil {
			t.Errorf("%v", err)
		}
	})
	e.start(t)
	return e
}

// ejabberdDir makes a folder the ejabberd user can reach, removed when the
// test ends. t.TempDir will not do: its parent is private to root (0700).
func ejabberdDir(t TB) string {
	t.Helper()
	base := os.TempDir()
	if !othersCanEnter(base) {
		base = "/tmp"
	}
	if !othersCanEnter(base) {
		t.Fatalf("testenv: the ejabberd user cannot reach %s (nor %s); set TMPDIR to a folder every user may enter", os.TempDir(), base)
	}
	dir, err := os.MkdirTemp(base, "starling-ejabberd-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	// Root removes it whoever owns what inside.
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("testenv: remove %s: %v", dir, err)
		}
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return dir
}

// othersCanEnter tells whether every folder on the way to dir can be entered
// by a user that neither owns it nor is in its group.
func othersCanEnter(dir string) bool {
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false
	}
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil || !st.IsDir() || st.Mode().Perm()&0o001 == 0 {
			return false
		}
		if p == filepath.Dir(p) {
			return true
		}
	}
}

func randomHex(t TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func (e *Ejabberd) config(c2s, comp int) string {
	return fmt.Sprintf(`# written by internal/testenv
hosts:
  - %[1]q
loglevel: info
auth_method: internal
# No certfiles: no listener uses TLS, and ejabberd starts without any.
listen:
  -
    port: %[2]d
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: false
    starttls_required: false
    shaper: none
  -
    port: %[3]d
    ip: "127.0.0.1"
    module: ejabberd_service
    # 23.01 renamed the service listener's shaper_rule to shaper (and ignores
    # shaper_rule, with a warning); none is the default, spelled out.
    shaper: none
    hosts:
      %[4]q:
        password: %[5]q
%[6]smodules:
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}
  mod_offline: {}
  mod_stream_mgmt: {}
  # For ejabberdctl change_password, which Register uses on an existing user.
  mod_admin_extra: {}
`, e.Host, c2s, comp, e.ComponentDomain, e.Secret, e.extraComponents())
}

// extraComponents gives each of the option's component domains a service
// listener of its own: a connection to a listener registers routes for every
// domain in that listener's hosts, so domains sharing one would share their
// traffic.
func (e *Ejabberd) extraComponents() string {
	var b strings.Builder
	for _, d := range e.opts.components {
		_, port, _ := strings.Cut(e.extra[d], ":")
		fmt.Fprintf(&b, "  -\n    port: %s\n    ip: \"127.0.0.1\"\n    module: ejabberd_service\n    shaper: none\n    hosts:\n      %q:\n        password: %q\n", port, d, e.Secret)
	}
	return b.String()
}

// ComponentAddrOf returns where the component for domain (the main one or
// one of WithComponents) connects.
func (e *Ejabberd) ComponentAddrOf(domain string) string {
	if a, ok := e.extra[domain]; ok {
		return a
	}
	return e.ComponentAddr
}

// ctlConfig is sourced by ejabberdctl for every command. ERL_DIST_PORT makes
// the node listen for distribution on that port and the ctl commands connect
// to it there, so no epmd runs. The node is bound to loopback with the kernel
// flag directly: INET_DIST_INTERFACE would do the same, but ejabberdctl then
// boots an extra Erlang VM to parse it on every command (+0.3 s each).
// The cookie is set here so nothing depends on ~ejabberd/.erlang.cookie.
func (e *Ejabberd) ctlConfig(dist int, cookie string) string {
	return fmt.Sprintf(`# written by internal/testenv
ERLANG_NODE=%s
ERL_DIST_PORT=%d
ERL_OPTIONS="-setcookie %s -kernel inet_dist_use_interface {127,0,0,1} -env ERL_CRASH_DUMP_BYTES 0"
EJABBERD_BYPASS_WARNINGS=true
`, e.node, dist, cookie)
}

func (e *Ejabberd) flags(args ...string) []string {
	return append([]string{
		"--config-dir", e.dir,
		"--config", filepath.Join(e.dir, "ejabberd.yml"),
		"--ctl-config", filepath.Join(e.dir, "ejabberdctl.cfg"),
		"--spool", filepath.Join(e.dir, "spool"),
		"--logs", filepath.Join(e.dir, "logs"),
	}, args...)
}

func (e *Ejabberd) start(t TB) {
	t.Helper()
	e.starts++
	// ejabberd writes logs/ejabberd.log itself; this file catches what it
	// prints before its logger runs (a bad config, a crash).
	console := filepath.Join(e.dir, fmt.Sprintf("console-%d.log", e.starts))
	e.proc = startProcess(t, console, e.ctl, e.flags("foreground")...)
	waitTCP(t, e.C2SAddr, 60*time.Second, e.proc.exited, console)
	waitTCP(t, e.ComponentAddr, 60*time.Second, e.proc.exited, console)
	// The listeners open as ejabberd finishes starting; status confirms it
	// (one ejabberdctl call, ~0.5 s) so that Register works right away.
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := e.run(15*time.Second, "status")
		if err == nil {
			return
		}
		select {
		case <-e.proc.exited:
			t.Fatalf("testenv: ejabberd exited while starting; log:\n%s", e.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: ejabberd not started after 60s: %v\n%s\nlog:\n%s", err, out, e.Log())
		}
	}
}

// run runs one ejabberdctl command against the node and returns its output.
// Each command boots a small Erlang VM, so it takes about half a second.
func (e *Ejabberd) run(within time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.ctl, e.flags(args...)...)
	// ejabberdctl runs erl under su, which puts it in a session of its own:
	// on timeout, kill the whole tree, not only the script.
	cmd.Cancel = func() error { return killTree(cmd.Process.Pid) }
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		err = fmt.Errorf("ejabberdctl %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), err
}

// Register creates the account user@Host (ejabberdctl register, ~0.4 s), or
// sets its password when it exists already (change_password, ~0.4 s more),
// keeping its roster.
func (e *Ejabberd) Register(t TB, user, password string) {
	t.Helper()
	out, err := e.run(30*time.Second, "register", user, e.Host, password)
	if err != nil && strings.Contains(out, "already registered") {
		out, err = e.run(30*time.Second, "change_password", user, e.Host, password)
	}
	if err != nil {
		t.Fatalf("testenv: %v\n%s", err, out)
	}
}

// Restart stops ejabberd and starts it again on the same ports, with the same
// node name and data, as an operator's restart would.
func (e *Ejabberd) Restart(t TB) {
	t.Helper()
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	e.start(t)
}

// stop asks the node to stop (`ejabberdctl stop`), waits for the foreground
// process to exit, and kills what is left of it after 10 s.
func (e *Ejabberd) stop() error {
	p := e.proc
	if p == nil {
		return nil
	}
	select {
	case <-p.exited:
		return nil
	default:
	}
	out, err := e.run(15*time.Second, "stop")
	select {
	case <-p.exited:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = killTree(p.cmd.Process.Pid)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("testenv: ejabberd (pid %d) did not exit", p.cmd.Process.Pid)
	}
	return fmt.Errorf("testenv: ejabberd did not stop within 10s and was killed (stop: %v %s); log:\n%s", err, out, e.Log())
}

// Log returns the tail of ejabberd's log (and of error.log when it has
// anything), or what the process printed when there is no log yet.
func (e *Ejabberd) Log() string {
	logs := filepath.Join(e.dir, "logs")
	var b strings.Builder
	if st, err := os.Stat(filepath.Join(logs, "ejabberd.log")); err == nil && st.Size() > 0 {
		b.WriteString(tail(filepath.Join(logs, "ejabberd.log")))
	} else if e.proc != nil {
		b.WriteString(tail(e.proc.log))
	}
	if st, err := os.Stat(filepath.Join(logs, "error.log")); err == nil && st.Size() > 0 {
		b.WriteString("\n--- error.log ---\n")
		b.WriteString(tail(filepath.Join(logs, "error.log")))
	}
	return b.String()
}

// killTree kills pid and every process below it. ejabberdctl starts erl
// through su, which gives it a new session, so a process group would not
// reach it; the tree is found through /proc. It kills the leaves first, so
// that each dead process is reaped by its parent (bash, su, sh all wait for
// their child) rather than orphaned to an init that may not reap zombies.
func killTree(pid int) error {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		live := liveDescendants(pid)
		if len(live) == 0 {
			break
		}
		for p, hasChildren := range live {
			if !hasChildren {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond) // let the parents reap them
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}

// liveDescendants maps each live (not zombie) process below pid to whether
// it has live children of its own.
func liveDescendants(pid int) map[int]bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, ent := range entries {
		p, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) < 2 || fields[0] == "Z" || fields[0] == "X" {
			continue
		}
		ppid, err := strconv.Atoi(fields[1])
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], p)
	}
	out := map[int]bool{}
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out[c] = len(children[c]) > 0
			queue = append(queue, c)
		}
	}
	return out
}
