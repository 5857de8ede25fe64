package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Eventually polls cond every few milliseconds until it holds or the deadline
// passes, then fails the test with msg.
func Eventually(t TB, within time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: "+msg, append([]any{within}, args...)...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Ports for servers are drawn from below Linux's ephemeral range (32768 and
// up by default), where the kernel picks the local ports of outgoing
// connections: a port the kernel handed out (listening on :0) could be taken
// by some client's connect before the server binds it, which ejabberd
// reported as eaddrinuse under load. Ports handed out in this process are
// not handed out again.
const (
	portLow  = 20000
	portHigh = 32000
)

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// FreePort returns a loopback TCP port that was free a moment ago, below the
// ephemeral range and not returned before by this process.
func FreePort(t TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := portLow + rand.IntN(portHigh-portLow)
		if portsUsed[p] {
			continue
		}
		l, err := net.Listen("tcp", addr(p))
		if err != nil {
			continue
		}
		l.Close()
		portsUsed[p] = true
		return p
	}
	t.Fatalf("testenv: no free port in %d-%d", portLow, portHigh)
	return 0
}

// need returns the path of a server binary or fails the test naming the
// package that provides it.
func need(t TB, binary, pkg string) string {
	t.Helper()
	for _, dir := range []string{"", "/usr/sbin", "/usr/bin", "/sbin"} {
		if dir == "" {
			if p, err := exec.LookPath(binary); err == nil {
				return p
			}
			continue
		}
		p := filepath.Join(dir, binary)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	t.Fatalf("testenv: %s not found; install it with: apt-get install -y %s (or run `make deps`)", binary, pkg)
	return ""
}

// waitTCP waits until addr accepts connections or the process exits.
func waitTCP(t TB, addr string, within time.Duration, exited <-chan struct{}, logPath string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("testenv: server for %s exited early; log %s:\n%s", addr, logPath, tail(logPath))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: %s not listening after %s; log %s:\n%s", addr, within, logPath, tail(logPath))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// process is a child server process owned by a test.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

func startProcess(t TB, logPath string, name string, args ...string) *process {
	t.Helper()
	return startProcessEnv(t, logPath, nil, name, args...)
}

// startProcessEnv is startProcess with the environment env (nil: this
// process's).
func startProcessEnv(t TB, logPath string, env []string, name string, args ...string) *process {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	// A group of its own: a Ctrl-C in the terminal reaches only the test
	// (or make run), which then stops its servers in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("testenv: start %s: %v", name, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{}), log: logPath}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p
}

// stop terminates the process and waits for it.
func (p *process) stop() error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
		return nil
	case <-time.After(5 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("testenv: pid %d did not exit", p.cmd.Process.Pid)
	}
}

// Addr is the loopback address of port.
func Addr(port int) string { return addr(port) }

// Port is want, or a free loopback port when want is 0.
func Port(t TB, want int) int { return port(t, want) }

// Process is a child process owned by a test, a bench run or make run.
type Process = process

// StartProcess starts name with args and the environment env (nil: this
// process's), its output in logPath, in a process group of its own.
func StartProcess(t TB, logPath string, env []string, name string, args ...string) *Process {
	t.Helper()
	return startProcessEnv(t, logPath, env, name, args...)
}

// Stop terminates the process (interrupt, then kill) and waits for it.
func (p *process) Stop() error { return p.stop() }

// Exited is closed when the process has exited.
func (p *process) Exited() <-chan struct{} { return p.exited }

// State describes how the process ended, once Exited is closed.
func (p *process) State() string { return fmt.Sprint(p.cmd.ProcessState) }

// Tail returns the end of the file at path (its last 4000 bytes), for
// failure messages.
func Tail(path string) string { return tail(path) }
