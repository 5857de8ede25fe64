package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// Program is the TB of a program that starts the same servers the tests
// start (make run, the bench, the soak): each part registers its stop with
// Cleanup, and Stop (or a fatal error) runs them newest first, once.
type Program struct {
	name    string // prefixes every message: "bench: ..."
	verbose bool   // Logf prints only when set

	mu       sync.Mutex
	cleanups []func()
	root     string // every TempDir lives below it; removed last
	dirs     int
	failed   bool
}

var _ TB = (*Program)(nil)

// NewProgram returns the TB of the program called name; with verbose, what
// the environment logs is printed too.
func NewProgram(name string, verbose bool) *Program {
	return &Program{name: name, verbose: verbose}
}

// Helper does nothing: there is no test to attribute lines to.
func (p *Program) Helper() {}

// Cleanup registers f to run at Stop.
func (p *Program) Cleanup(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cleanups = append(p.cleanups, f)
}

// Mark and Unwind give a phase of the program its own cleanups:
// Unwind(Mark()) runs those registered since, so that a server one phase
// needs stops when the phase ends.
func (p *Program) Mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.cleanups)
}

// Unwind runs the cleanups registered after mark, newest first.
func (p *Program) Unwind(mark int) {
	for {
		p.mu.Lock()
		if len(p.cleanups) <= mark {
			p.mu.Unlock()
			return
		}
		f := p.cleanups[len(p.cleanups)-1]
		p.cleanups = p.cleanups[:len(p.cleanups)-1]
		p.mu.Unlock()
		f()
	}
}

// Stop runs every registered cleanup, newest first, each once, even when
// several goroutines ask at the same time.
func (p *Program) Stop() { p.Unwind(0) }

// Root is the folder every TempDir lives under (the bench finds its
// servers' processes by it); it is removed after everything else has
// stopped.
func (p *Program) Root() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ensureRoot()
	return p.root
}

// TempDir returns a fresh folder under Root.
func (p *Program) TempDir() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ensureRoot()
	p.dirs++
	dir := filepath.Join(p.root, strconv.Itoa(p.dirs))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.exit(err)
	}
	return dir
}

// ensureRoot makes the root folder once; p.mu is held.
func (p *Program) ensureRoot() {
	if p.root == "" {
		root, err := os.MkdirTemp("", "starling-"+p.name+"-")
		if err != nil {
			p.exit(err)
		}
		p.root = root
		// First in, so run last.
		p.cleanups = append([]func(){func() { _ = os.RemoveAll(root) }}, p.cleanups...)
	}
}

// exit reports err and exits, with p.mu held: nothing was started that
// needs the cleanups yet at the points it is used.
func (p *Program) exit(err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", p.name, err)
	os.Exit(1)
}

// Logf prints when the program is verbose.
func (p *Program) Logf(format string, args ...any) {
	if p.verbose {
		fmt.Fprintf(os.Stderr, "  . "+format+"\n", args...)
	}
}

// Errorf reports an error and marks the program failed; it goes on.
func (p *Program) Errorf(format string, args ...any) {
	p.mu.Lock()
	p.failed = true
	p.mu.Unlock()
	fmt.Fprintf(os.Stderr, p.name+": error: "+format+"\n", args...)
}

// Failed reports whether Errorf was called.
func (p *Program) Failed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

// Fatal reports args, stops everything started so far and exits 1.
func (p *Program) Fatal(args ...any) {
	fmt.Fprintln(os.Stderr, append([]any{p.name + ":"}, args...)...)
	p.Stop()
	os.Exit(1)
}

// Fatalf is Fatal with a format.
func (p *Program) Fatalf(format string, args ...any) { p.Fatal(fmt.Sprintf(format, args...)) }
