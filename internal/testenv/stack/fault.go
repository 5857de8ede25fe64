package stack

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"starling.dev/starling/internal/testenv"
)

// Fault injection on a stack in process mode: signals to the gateway, and
// an external nats-server that can be stopped and started again on the same
// port and store. The fault-injection suite (internal/chaos) and the soak
// (internal/soak) drive these.

// logFile is dir/name.log, or dir/name-N.log when that exists already, so
// that the log of a killed gateway survives its restart.
func logFile(dir, name string) string {
	p := filepath.Join(dir, name+".log")
	for i := 2; ; i++ {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			return p
		}
		p = filepath.Join(dir, fmt.Sprintf("%s-%d.log", name, i))
	}
}

// Signal sends sig to the gateway process; it fails for an in-process
// gateway.
func (g *Gateway) Signal(sig os.Signal) error {
	if g.svc.proc == nil {
		return fmt.Errorf("stack: the gateway runs in this process; signals need Options.Processes")
	}
	return g.svc.proc.Signal(sig)
}

// Kill kills the gateway process with SIGKILL and waits for it to be gone.
func (g *Gateway) Kill() error {
	if err := g.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	if !g.WaitExit(10 * time.Second) {
		return fmt.Errorf("stack: the gateway survived SIGKILL for 10 s")
	}
	return nil
}

// WaitExit waits up to within for the gateway to exit and reports whether
// it did.
func (g *Gateway) WaitExit(within time.Duration) bool {
	select {
	case <-g.svc.exited:
		return true
	case <-time.After(within):
		return false
	}
}

// Pid is the gateway's process id, or 0 for an in-process gateway.
func (g *Gateway) Pid() int {
	if g.svc.proc == nil {
		return 0
	}
	return g.svc.proc.Pid()
}

// StartGatewayAgain starts a gateway after the last one stopped or was
// killed, connected to the stack's XMPP server, and makes it s.Gateway.
func (s *Stack) StartGatewayAgain(t testenv.TB) *Gateway {
	t.Helper()
	s.Gateway = s.StartGateway(t, s.Server.ComponentAddr)
	return s.Gateway
}

// NATSProcess is a nats-server with JetStream run as a separate process
// on a fixed loopback port and store folder, so it can be stopped and
// started again where its clients reconnect.
type NATSProcess struct {
	URL   string
	Port  int
	Store string
	bin   string
	dir   string
	proc  *testenv.Process
}

// startNATSProcess builds nats-server (from the module's requirement, so
// the version the gateway embeds) into dir/bin and starts it.
func startNATSProcess(t testenv.TB, dir string) *NATSProcess {
	t.Helper()
	bin := testenv.BuildNATSServer(t, filepath.Join(dir, "bin"))
	n := &NATSProcess{Port: testenv.FreePort(t), Store: filepath.Join(dir, "jetstream"), bin: bin, dir: dir}
	n.URL = fmt.Sprintf("nats://%s", testenv.Addr(n.Port))
	n.Start(t)
	return n
}

// Start starts nats-server (again) on its port and store and waits until
// it accepts connections.
func (n *NATSProcess) Start(t testenv.TB) {
	t.Helper()
	if n.proc != nil {
		select {
		case <-n.proc.Exited():
		default:
			t.Fatalf("testenv: nats-server pid %d is still running", n.proc.Pid())
		}
	}
	n.proc = testenv.StartProcess(t, logFile(n.dir, "nats-server"), nil, n.bin,
		"-a", "127.0.0.1", "-p", fmt.Sprint(n.Port), "-js", "-sd", n.Store)
	p := n.proc
	t.Cleanup(func() { _ = p.Stop() })
	testenv.Eventually(t, 15*time.Second, func() bool { return tcpUp(testenv.Addr(n.Port)) }, "nats-server on port %d did not listen", n.Port)
}

// Stop stops nats-server with SIGTERM (an orderly shutdown; JetStream's
// file store survives) and waits for it.
func (n *NATSProcess) Stop() error {
	if err := n.proc.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	if !n.proc.WaitExit(15 * time.Second) {
		return fmt.Errorf("stack: nats-server pid %d ignored SIGTERM for 15 s", n.proc.Pid())
	}
	return nil
}

// Restart stops nats-server and starts it again on the same port and store.
func (n *NATSProcess) Restart(t testenv.TB) {
	t.Helper()
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	n.Start(t)
}

// tcpUp tells whether addr accepts a TCP connection.
func tcpUp(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// StartStandbyGateway runs one more gateway, connected to xmppAddr, and
// returns once its /readyz answers 200, its component connected or not:
// against a server that allows one connection per component (Prosody) a
// second replica stands by until the holder goes.
func (s *Stack) StartStandbyGateway(t testenv.TB, xmppAddr string) *Gateway {
	t.Helper()
	env := s.env("gateway", xmppAddr, s.listenAddr(t, 0))
	start := time.Now()
	svc := s.run(t, "gateway", env, env["STARLING_METRICS_ADDR"])
	s.waitReady(t, svc, false, 30*time.Second)
	return &Gateway{Ops: svc.url, Ready: time.Since(start), svc: svc}
}

// Connected asks gateway g's /readyz whether its component is connected.
func (s *Stack) Connected(g *Gateway) bool { return ready(s.http, g.Ops, true) }
