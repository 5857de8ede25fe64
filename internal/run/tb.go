package main

import (
	"fmt"
	"os"
	"sync"
)

// runner is make run's testenv.TB: what the stack starts registers its stop
// here, and stop runs those in reverse order, once.
type runner struct {
	mu       sync.Mutex
	cleanups []func()
	tmp      string
	verbose  bool
}

func (r *runner) Helper() {}

func (r *runner) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

// stop runs the registered cleanups, newest first.
func (r *runner) stop() {
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

// TempDir is one folder, removed at the end: the stack keeps everything
// that matters in run/, so it rarely asks.
func (r *runner) TempDir() string {
	r.mu.Lock()
	dir := r.tmp
	r.mu.Unlock()
	if dir != "" {
		return dir
	}
	dir, err := os.MkdirTemp("", "starling-run-")
	if err != nil {
		r.Fatal(err)
	}
	r.mu.Lock()
	r.tmp = dir
	r.mu.Unlock()
	r.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func (r *runner) Logf(format string, args ...any) {
	if r.verbose {
		fmt.Fprintf(os.Stderr, "  . "+format+"\n", args...)
	}
}

func (r *runner) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "run: "+format+"\n", args...)
}

// Fatal stops everything started so far and exits.
func (r *runner) Fatal(args ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"run:"}, args...)...)
	r.stop()
	os.Exit(1)
}

func (r *runner) Fatalf(format string, args ...any) { r.Fatal(fmt.Sprintf(format, args...)) }
