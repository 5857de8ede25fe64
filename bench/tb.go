package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// runner is the bench tool's testenv.TB: it starts the same servers the
// tests start and stops every one of them at exit, on a fatal error and on
// Ctrl-C, in reverse order.
type runner struct {
	mu       sync.Mutex
	cleanups []func()
	root     string // every TempDir lives below it
	dirs     int
	verbose  bool
	failed   bool
}

func newRunner(verbose bool) *runner {
	root, err := os.MkdirTemp("", "starling-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	r := &runner{root: root, verbose: verbose}
	r.Cleanup(func() { _ = os.RemoveAll(root) })
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "\nbench: %v: stopping every server\n", s)
		r.runCleanups()
		os.Exit(130)
	}()
	return r
}

func (r *runner) Helper() {}

func (r *runner) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

// runCleanups runs the registered cleanups, newest first, each once, even
// when several goroutines ask at the same time.
func (r *runner) runCleanups() {
	for {
		r.mu.Lock()
		if len(r.cleanups) == 0 {
			r.mu.Unlock()
			return
		}
		f := r.cleanups[len(r.cleanups)-1]
		r.cleanups = r.cleanups[:len(r.cleanups)-1]
		r.mu.Unlock()
		f()
	}
}

// mark and unwind give a scenario its own cleanups: unwind(mark()) runs the
// cleanups registered since, so that a server one scenario needs (ejabberd)
// stops when that scenario ends.
func (r *runner) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cleanups)
}

func (r *runner) unwind(mark int) {
	for {
		r.mu.Lock()
		if len(r.cleanups) <= mark {
			r.mu.Unlock()
			return
		}
		f := r.cleanups[len(r.cleanups)-1]
		r.cleanups = r.cleanups[:len(r.cleanups)-1]
		r.mu.Unlock()
		f()
	}
}

func (r *runner) TempDir() string {
	r.mu.Lock()
	r.dirs++
	dir := filepath.Join(r.root, strconv.Itoa(r.dirs))
	r.mu.Unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.Fatal(err)
	}
	return dir
}

func (r *runner) Logf(format string, args ...any) {
	if r.verbose {
		fmt.Fprintf(os.Stderr, "  . "+format+"\n", args...)
	}
}

func (r *runner) Errorf(format string, args ...any) {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
	fmt.Fprintf(os.Stderr, "bench: error: "+format+"\n", args...)
}

func (r *runner) Fatal(args ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"bench: fatal:"}, args...)...)
	r.runCleanups()
	os.Exit(1)
}

func (r *runner) Fatalf(format string, args ...any) {
	r.Fatal(fmt.Sprintf(format, args...))
}

// progress prints what the tool is doing, so a long run shows signs of life.
func (r *runner) progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
