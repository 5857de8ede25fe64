package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progressClock is how often progress is reported.
type progressClock time.Duration

// defaultProgressClock redraws a bar 5 times a second on a terminal; a
// plain line is written every 10th tick (2 s).
const defaultProgressClock = progressClock(200 * time.Millisecond)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// progress reports an upload: a bar with rate and ETA redrawn in place when
// w is a terminal, a plain line now and then otherwise.
type progress struct {
	w     io.Writer
	total int64 // -1 when unknown
	sent  atomic.Int64
	tty   bool
	every time.Duration
	begin time.Time
}

func newProgress(w io.Writer, total int64, every progressClock) *progress {
	return &progress{w: w, total: total, tty: isTerminal(w), every: time.Duration(every), begin: time.Now()}
}

// start reports until the returned stop is called; stop writes the last
// report and waits for the reporting goroutine to end.
func (p *progress) start() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(p.every)
		defer t.Stop()
		for tick := 1; ; tick++ {
			select {
			case <-done:
				return
			case <-t.C:
				if p.tty || tick%10 == 0 {
					p.report(false)
				}
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		p.report(true)
	}
}

func (p *progress) report(final bool) {
	sent := p.sent.Load()
	elapsed := time.Since(p.begin)
	rate := float64(sent) / max(elapsed.Seconds(), 1e-3)
	line := fmt.Sprintf("%s sent, %s/s", bytesText(sent), bytesText(int64(rate)))
	if p.total > 0 {
		frac := min(float64(sent)/float64(p.total), 1)
		eta := "?"
		if rate > 0 {
			eta = time.Duration(float64(p.total-sent) / rate * float64(time.Second)).Round(time.Second).String()
		}
		line = fmt.Sprintf("%s %3.0f%% %s of %s, %s/s, ETA %s", bar(frac), frac*100,
			bytesText(sent), bytesText(p.total), bytesText(int64(rate)), eta)
	}
	switch {
	case p.tty && final:
		fmt.Fprintf(p.w, "\r\033[K%s\n", line)
	case p.tty:
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	default:
		fmt.Fprintf(p.w, "import: %s\n", line)
	}
}

func bar(frac float64) string {
	const width = 30
	n := int(frac * width)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
