package testenv

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Scanner counts byte patterns in a stream of XML without parsing it, and
// hands each <iq ...> start tag to a callback. It is the receiving end of the
// sinks and of every benchmark: bytes.Count over large reads costs a few ns
// per stanza, so the receiver is never what a figure measures.
type Scanner struct {
	pats   [][]byte
	counts []atomic.Int64
	maxPat int
	onIQ   atomic.Pointer[func(tag []byte)]

	mu      sync.Mutex
	watches []*watch
	nwatch  atomic.Int32
	bytes   atomic.Int64
}

// watch fires when pattern idx has been counted target times.
type watch struct {
	idx    int
	target int64
	at     time.Time
	done   chan struct{}
}

var iqOpen = []byte("<iq")

// NewScanner counts each of patterns; Count takes the pattern's index.
func NewScanner(patterns ...string) *Scanner {
	s := &Scanner{counts: make([]atomic.Int64, len(patterns)), maxPat: len(iqOpen)}
	for _, p := range patterns {
		s.pats = append(s.pats, []byte(p))
		s.maxPat = max(s.maxPat, len(p))
	}
	return s
}

// OnIQ makes the scanner call f with every <iq ...> start tag it reads, from
// the goroutine that feeds it.
func (s *Scanner) OnIQ(f func(tag []byte)) { s.onIQ.Store(&f) }

// Feed scans data and returns how many bytes it consumed; the rest (a
// pattern or an <iq> tag cut by the read) must be fed again with more.
func (s *Scanner) Feed(data []byte) int {
	cut := max(len(data)-(s.maxPat-1), 0)
	if f := s.onIQ.Load(); f != nil {
		off := 0
		for {
			i := bytes.Index(data[off:], iqOpen)
			if i < 0 {
				break
			}
			i += off
			if i >= cut {
				break
			}
			j := bytes.IndexByte(data[i:], '>')
			if j < 0 {
				cut = i
				break
			}
			(*f)(data[i : i+j+1])
			off = i + j + 1
		}
	}
	for k, p := range s.pats {
		// A match starting before cut lies wholly within data[:cut+len(p)-1].
		if n := bytes.Count(data[:min(len(data), cut+len(p)-1)], p); n > 0 {
			s.counts[k].Add(int64(n))
		}
	}
	s.bytes.Add(int64(cut))
	if s.nwatch.Load() > 0 {
		s.fire()
	}
	return cut
}

func (s *Scanner) fire() {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.watches[:0]
	for _, w := range s.watches {
		if s.counts[w.idx].Load() >= w.target {
			w.at = now
			close(w.done)
			continue
		}
		kept = append(kept, w)
	}
	s.watches = kept
	s.nwatch.Store(int32(len(kept)))
}

// Count returns how many times pattern idx was seen.
func (s *Scanner) Count(idx int) int64 { return s.counts[idx].Load() }

// Bytes returns how many bytes were scanned.
func (s *Scanner) Bytes() int64 { return s.bytes.Load() }

// Await returns the time at which pattern idx had been counted target times
// (the end of the read that carried the last one), or an error at the
// deadline.
func (s *Scanner) Await(idx int, target int64, within time.Duration) (time.Time, error) {
	w := &watch{idx: idx, target: target, done: make(chan struct{})}
	s.mu.Lock()
	s.watches = append(s.watches, w)
	s.nwatch.Store(int32(len(s.watches)))
	s.mu.Unlock()
	s.fire() // it may have happened already
	t := time.NewTimer(within)
	defer t.Stop()
	select {
	case <-w.done:
		return w.at, nil
	case <-t.C:
		s.mu.Lock()
		for i, x := range s.watches {
			if x == w {
				s.watches = append(s.watches[:i], s.watches[i+1:]...)
				break
			}
		}
		s.nwatch.Store(int32(len(s.watches)))
		s.mu.Unlock()
		return time.Time{}, fmt.Errorf("after %s: counted %d of %d %q", within, s.Count(idx), target, s.pats[idx])
	}
}

// Pump reads r into s until r fails; it returns the read error.
func (s *Scanner) Pump(r io.Reader) error {
	buf := make([]byte, 256<<10)
	n := 0
	for {
		m, err := r.Read(buf[n:])
		n += m
		if m > 0 {
			used := s.Feed(buf[:n])
			n = copy(buf, buf[used:n])
			if n == len(buf) { // an <iq> tag longer than the buffer: not ours
				n = 0
			}
		}
		if err != nil {
			return err
		}
	}
}
