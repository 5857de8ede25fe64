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

// RedisOptions changes how StartRedisWith runs the server; the zero value is
// what StartRedis does.
type RedisOptions struct {
	Port       int    // 0: a free port
	Dir        string // working folder (AOF, log); "": a temporary one
	AppendOnly bool   // keep an append-only file in Dir, so data survives a restart
}

// StartRedis starts redis-server on a free loopback port without persistence
// and stops it when the test ends.
func StartRedis(t TB) *Redis {
	t.Helper()
	return StartRedisWith(t, RedisOptions{})
}

// StartRedisWith starts redis-server as o says and stops it (SIGTERM, which
// flushes the AOF) when the test ends.
func StartRedisWith(t TB, o RedisOptions) *Redis {
	t.Helper()
	bin := need(t, "redis-server", "redis-server")
	dir := o.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	port := port(t, o.Port)
	aof := "no"
	if o.AppendOnly {
		aof = "yes"
	}
	p := startProcess(t, filepath.Join(dir, "redis.log"), bin,
		"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", aof,
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

// Exited is closed when the server process has exited.
func (r *Redis) Exited() <-chan struct{} { return r.proc.exited }
