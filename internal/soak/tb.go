package main

import (
	"fmt"
	"os"
	"sync"
)

// runner is the soak's testenv.TB: what the stack starts registers its stop
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

// TempDir is a fresh folder under one removed at the end.
func (r *runner) TempDir() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tmp == "" {
		dir, err := os.MkdirTemp("", "starling-soak-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "soak:", err)
			os.Exit(1)
		}
		r.tmp = dir
		// First in, so removed last.
		r.cleanups = append([]func(){func() { _ = os.RemoveAll(dir) }}, r.cleanups...)
	}
	dir, err := os.MkdirTemp(r.tmp, "")
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	return dir
}

func (r *runner) Logf(format string, args ...any) {
	if r.verbose {
		fmt.Fprintf(os.Stderr, "  . "+format+"\n", args...)
	}
}

func (r *runner) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "soak: "+format+"\n", args...)
}

// Fatal stops everything started so far and exits.
func (r *runner) Fatal(args ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"soak:"}, args...)...)
	r.stop()
	os.Exit(1)
}

func (r *runner) Fatalf(format string, args ...any) { r.Fatal(fmt.Sprintf(format, args...)) }
