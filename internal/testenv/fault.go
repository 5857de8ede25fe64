package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Fault injection: signals to child processes and restarts of Redis on the
// same port and folder. The fault-injection suite (internal/chaos) and the
// soak use these; ordinary tests stop servers only in t.Cleanup.

// Signal sends sig to the process (not to its group).
func (p *process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Pid is the process id.
func (p *process) Pid() int { return p.cmd.Process.Pid }

// WaitExit waits up to within for the process to exit and reports whether
// it did.
func (p *process) WaitExit(within time.Duration) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(within):
		return false
	}
}

// Pid is the redis-server's process id.
func (r *Redis) Pid() int { return r.proc.Pid() }

// Stop stops redis-server with SIGTERM (which, with appendonly yes, flushes
// the AOF) and waits up to 10 s for it, then kills it.
func (r *Redis) Stop() error {
	p := r.proc
	_ = p.Signal(syscall.SIGTERM)
	if p.WaitExit(10 * time.Second) {
		return nil
	}
	_ = p.cmd.Process.Kill()
	if p.WaitExit(5 * time.Second) {
		return fmt.Errorf("testenv: redis-server pid %d ignored SIGTERM for 10 s", p.Pid())
	}
	return fmt.Errorf("testenv: redis-server pid %d did not exit", p.Pid())
}

// Start starts redis-server again after Stop, with the same arguments (so
// the same port, folder and persistence), and returns once it answers PING.
// The new process stops when the test ends.
func (r *Redis) Start(t TB) {
	t.Helper()
	old := r.proc
	select {
	case <-old.exited:
	default:
		t.Fatalf("testenv: redis-server pid %d is still running", old.Pid())
	}
	dir := filepath.Dir(old.log)
	logPath := filepath.Join(dir, fmt.Sprintf("redis-%d.log", time.Now().UnixNano()))
	p := startProcess(t, logPath, old.cmd.Path, old.cmd.Args[1:]...)
	r.proc = p
	t.Cleanup(func() { _ = p.stop() })
	waitTCP(t, r.Addr, 30*time.Second, p.exited, p.log)
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	// A server loading its AOF answers LOADING until it is done.
	Eventually(t, 30*time.Second, func() bool { return c.Ping(context.Background()).Err() == nil }, "redis at %s does not answer PING after a restart", r.Addr)
}

// Restart stops redis-server with SIGTERM and starts it again on the same
// port and folder, as an operator's restart would.
func (r *Redis) Restart(t TB) {
	t.Helper()
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	r.Start(t)
}
