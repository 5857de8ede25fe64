package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"starling.dev/starling/internal/testenv"
)

// runner is the bench tool's testenv.TB: it starts the same servers the
// tests start and stops every one of them at exit, on a fatal error and on
// Ctrl-C, in reverse order.
type runner struct {
	*testenv.Program
}

func newRunner(verbose bool) *runner {
	r := &runner{testenv.NewProgram("bench", verbose)}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "\nbench: %v: stopping every server\n", s)
		r.Stop()
		os.Exit(130)
	}()
	return r
}

// progress prints what the tool is doing, so a long run shows signs of life.
func (r *runner) progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
