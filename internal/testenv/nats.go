package testenv

import (
	"net"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// NATS is an in-process nats-server with JetStream on disk.
type NATS struct {
	Server *server.Server
	URL    string
	opts   server.Options
}

// NATSOptions changes how StartNATSWith runs the server; the zero value is
// what StartNATS does.
type NATSOptions struct {
	Port     int    // 0: a random port
	StoreDir string // JetStream storage; "": a temporary folder
}

// StartNATS starts an embedded NATS server with JetStream on a random
// loopback port; it is shut down when the test ends.
func StartNATS(t TB) *NATS {
	t.Helper()
	return StartNATSWith(t, NATSOptions{})
}

// StartNATSWith starts an embedded NATS server with JetStream as o says; it
// is shut down when the test ends.
func StartNATSWith(t TB, o NATSOptions) *NATS {
	t.Helper()
	n := &NATS{opts: server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  o.StoreDir,
		NoLog:     true,
		NoSigs:    true,
	}}
	if o.Port > 0 {
		n.opts.Port = o.Port
	}
	if n.opts.StoreDir == "" {
		n.opts.StoreDir = t.TempDir()
	}
	n.start(t)
	// Keep the port, so that Restart comes back where clients reconnect.
	n.opts.Port = n.Server.Addr().(*net.TCPAddr).Port
	return n
}

func (n *NATS) start(t TB) {
	t.Helper()
	opts := n.opts
	s, err := server.NewServer(&opts)
	if err != nil {
		t.Fatalf("testenv: nats: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatalf("testenv: nats not ready")
	}
	n.Server = s
	n.URL = s.ClientURL()
	t.Cleanup(s.Shutdown)
}

// Stop shuts the server down (its store stays on disk).
func (n *NATS) Stop() {
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
}

// Restart starts the server again on the same port with the same store.
func (n *NATS) Restart(t TB) {
	t.Helper()
	n.start(t)
}

// Conn returns a client connection, closed when the test ends.
func (n *NATS) Conn(t TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(n.URL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("testenv: nats connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}
