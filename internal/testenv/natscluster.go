package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSCluster is a JetStream cluster of nats-server processes on loopback,
// built from the module's nats-server requirement (the version the gateway
// embeds). Unlike servers in this process, a node can be killed with
// SIGKILL: a crash, not a graceful leadership hand-over.
type NATSCluster struct {
	Nodes []*NATSNode
	// Token is what clients must present ("" when none is required).
	Token string
}

// NATSNode is one server of a NATSCluster.
type NATSNode struct {
	// Name is the server_name, as JetStream names a stream's leader and
	// replicas (jetstream.ClusterInfo).
	Name string
	// URL is the node's client URL, Port its client port.
	URL  string
	Port int
	// Log is the node's log file (of its latest start).
	Log string

	bin, conf, monitor, dir string
	proc                    *Process
}

// NATSClusterOptions says how StartNATSCluster runs the cluster; the zero
// value is three nodes without authentication.
type NATSClusterOptions struct {
	Nodes int    // 0: 3
	Token string // required of clients when not empty
	Dir   string // configs, stores, logs and the binary; "": a temporary folder
}

// StartNATSCluster builds nats-server, starts the nodes and returns once each
// reports itself healthy (JetStream with a meta leader). The nodes are
// stopped when the test ends.
func StartNATSCluster(t TB, o NATSClusterOptions) *NATSCluster {
	t.Helper()
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if strings.ContainsAny(o.Token, "\"\\\n") {
		t.Fatalf("testenv: nats cluster: the token may not hold quotes, backslashes or newlines")
	}
	bin := BuildNATSServer(t, filepath.Join(o.Dir, "bin"))
	c := &NATSCluster{Token: o.Token}
	routePorts := make([]int, o.Nodes)
	var routes []string
	for i := range routePorts {
		routePorts[i] = FreePort(t)
		routes = append(routes, fmt.Sprintf("%q", "nats-route://"+Addr(routePorts[i])))
	}
	for i := range o.Nodes {
		n := &NATSNode{Name: fmt.Sprintf("n%d", i+1), Port: FreePort(t), bin: bin, dir: filepath.Join(o.Dir, fmt.Sprintf("n%d", i+1))}
		n.URL = "nats://" + Addr(n.Port)
		n.monitor = Addr(FreePort(t))
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		conf := fmt.Sprintf(`server_name: %q
listen: %q
http: %q
jetstream { store_dir: %q }
cluster {
  name: "starling"
  listen: %q
  routes: [%s]
}
`, n.Name, Addr(n.Port), n.monitor, filepath.Join(n.dir, "jetstream"), Addr(routePorts[i]), strings.Join(routes, ", "))
		if o.Token != "" {
			conf += fmt.Sprintf("authorization { token: %q }\n", o.Token)
		}
		n.conf = filepath.Join(n.dir, "nats.conf")
		if err := os.WriteFile(n.conf, []byte(conf), 0o600); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		c.Nodes = append(c.Nodes, n)
	}
	for _, n := range c.Nodes {
		n.launch(t)
	}
	for _, n := range c.Nodes {
		n.waitHealthy(t, 30*time.Second)
	}
	return c
}

// BuildNATSServer builds the module's nats-server into dir and returns the
// binary's path. It runs from the current folder, which must lie inside the
// module (tests do). Go's build cache makes it quick after the first time.
func BuildNATSServer(t TB, dir string) string {
	t.Helper()
	GoBuild(t, dir, "github.com/nats-io/nats-server/v2")
	return filepath.Join(dir, "nats-server")
}

// GoBuild builds the packages into dir (made if missing), each binary named
// after its package's folder. It runs from the current folder, which must
// lie inside the module (tests, the bench and make run all do).
func GoBuild(t TB, dir string, pkgs ...string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	args := append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)
	if out, err := exec.Command(goTool, args...).CombinedOutput(); err != nil {
		t.Fatalf("testenv: go build %v: %v\n%s", pkgs, err, out)
	}
}

// URLs is every node's client URL, comma-separated, as STARLING_NATS_URL
// takes a cluster.
func (c *NATSCluster) URLs() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL
	}
	return strings.Join(urls, ",")
}

// Node is the node named name (a server_name), or nil.
func (c *NATSCluster) Node(name string) *NATSNode {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Conn returns a client connection to the cluster (any node, failing over
// to the others), with the token; it is closed when the test ends.
func (c *NATSCluster) Conn(t TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(c.URLs(), nats.Token(c.Token), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("testenv: nats cluster connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// StreamLeader is the node leading stream, as the stream's info names it.
func (c *NATSCluster) StreamLeader(ctx context.Context, js jetstream.JetStream, stream string) (*NATSNode, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return nil, fmt.Errorf("testenv: stream %s has no leader", stream)
	}
	n := c.Node(info.Cluster.Leader)
	if n == nil {
		return nil, fmt.Errorf("testenv: stream %s is led by %q, not a node of this cluster", stream, info.Cluster.Leader)
	}
	return n, nil
}

// launch starts the node's process without waiting for it.
func (n *NATSNode) launch(t TB) {
	t.Helper()
	if n.proc != nil {
		select {
		case <-n.proc.Exited():
		default:
			t.Fatalf("testenv: nats-server %s (pid %d) is still running", n.Name, n.proc.Pid())
		}
	}
	n.Log = nextLog(n.dir, "nats-server")
	n.proc = StartProcess(t, n.Log, nil, n.bin, "-c", n.conf)
	p := n.proc
	t.Cleanup(func() { _ = p.Stop() })
}

// waitHealthy polls the node's /healthz until it answers 200 (client port
// open, JetStream current with a meta leader).
func (n *NATSNode) waitHealthy(t TB, within time.Duration) {
	t.Helper()
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	for {
		resp, err := hc.Get("http://" + n.monitor + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-n.proc.Exited():
			t.Fatalf("testenv: nats-server %s exited while starting; log %s:\n%s", n.Name, n.Log, Tail(n.Log))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: nats-server %s not healthy within %s (%v); log %s:\n%s", n.Name, within, err, n.Log, Tail(n.Log))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Start starts the node again, on its ports and store, after Kill, and
// waits until it is healthy.
func (n *NATSNode) Start(t TB) {
	t.Helper()
	n.launch(t)
	n.waitHealthy(t, 30*time.Second)
}

// Kill kills the node with SIGKILL (a crash: no leadership hand-over) and
// waits for it to be gone.
func (n *NATSNode) Kill() error {
	if err := n.proc.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	if !n.proc.WaitExit(10 * time.Second) {
		return fmt.Errorf("testenv: nats-server %s (pid %d) survived SIGKILL for 10 s", n.Name, n.proc.Pid())
	}
	return nil
}

// Pid is the node's process id.
func (n *NATSNode) Pid() int { return n.proc.Pid() }

// nextLog is dir/name.log, or dir/name-N.log when that exists already, so
// that the log of a killed node survives its restart.
func nextLog(dir, name string) string {
	p := filepath.Join(dir, name+".log")
	for i := 2; ; i++ {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			return p
		}
		p = filepath.Join(dir, fmt.Sprintf("%s-%d.log", name, i))
	}
}
