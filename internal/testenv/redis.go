package testenv

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a redis-server child process.
type Redis struct {
	Addr string
	URL  string
	proc *process
}

// StartRedis starts redis-server on a free loopback port without persistence
// and stops it when the test ends.
func StartRedis(t TB) *Redis {
	t.Helper()
	bin := need(t, "redis-server", "redis-server")
	dir := t.TempDir()
	port := FreePort(t)
	p := startProcess(t, filepath.Join(dir, "redis.log"), bin,
		"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no")
	r := &Redis{Addr: addr(port), URL: fmt.Sprintf("redis://%s/0", addr(port)), proc: p}
	t.Cleanup(func() { _ = p.stop() })
	waitTCP(t, r.Addr, 10*time.Second, p.exited, p.log)
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	Eventually(t, 10*time.Second, func() bool { return c.Ping(context.Background()).Err() == nil }, "redis at %s does not answer PING", r.Addr)
	return r
}

// Client returns a client for the server, closed when the test ends.
func (r *Redis) Client(t TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var prefixSeq atomic.Int64

// Prefix returns a key prefix unique to this test, so tests can share a server.
func Prefix(t TB) string {
	return fmt.Sprintf("test%d:%d:", time.Now().UnixNano()%1e9, prefixSeq.Add(1))
}
