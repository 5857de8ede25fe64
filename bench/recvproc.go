package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"starling.dev/starling/internal/testenv"
)

// counter counts the messages that reach the far end, by the domain they are
// addressed to: a receiver process (the headline view) or a byte-counting
// scanner in the bench process (the in-process view).
type counter interface {
	// expect starts waiting for n more messages to domain than have
	// arrived so far; the function it returns waits for them and returns
	// when the last one arrived.
	expect(domain string, n int) func(within time.Duration) (time.Time, error)
}

// scanCounter is a testenv.Scanner counting "<message" (index 0), or
// domain patterns at the indexes given.
type scanCounter struct {
	sc  *testenv.Scanner
	idx map[string]int // domain → pattern index; a missing domain counts pattern 0
}

func (c scanCounter) expect(domain string, n int) func(time.Duration) (time.Time, error) {
	i := c.idx[domain]
	base := c.sc.Count(i)
	return func(within time.Duration) (time.Time, error) { return c.sc.Await(i, base+int64(n), within) }
}

// recvProc is a receiver process (bench/receiver): a component on an XMPP
// server, or the bare endpoint a gateway connects to.
type recvProc struct {
	t    *runner
	name string
	base string // its HTTP interface
	addr string // where it listens (endpoint)
	proc *testenv.Process
	log  string
	hc   *http.Client // /stats and /watch, which answer at once
	wc   *http.Client // /wait, bounded by its context
}

// recvStats is the receiver's GET /stats.
type recvStats struct {
	Messages  map[string]int64 `json:"messages"`
	IQs       int64            `json:"iqs"`
	Answered  int64            `json:"answered"`
	Presences int64            `json:"presences"`
	Bytes     int64            `json:"bytes"`
	Sessions  int64            `json:"sessions"`
	Live      int64            `json:"live"`
	CPUNanos  int64            `json:"cpu_ns"`
	Error     string           `json:"error"`
}

// startComponentReceiver starts a receiver that logs in to the XMPP
// server's component port at addr as domain, and returns once it has.
func (b *bench) startComponentReceiver(addr, secret, domain string) *recvProc {
	r := b.startReceiver(domain, "-connect", addr, "-domain", domain, "-secret", secret)
	testenv.Eventually(b.t, 15*time.Second, func() bool {
		st := r.stats()
		if st.Error != "" {
			b.t.Fatalf("receiver %s: %s%s", domain, st.Error, r.tail())
		}
		return st.Live == 1
	}, "receiver for %s not logged in to %s%s", domain, addr, r.tail())
	return r
}

// startEndpointReceiver starts a receiver as the bare XEP-0114 endpoint for
// domain.
func (b *bench) startEndpointReceiver(domain, secret string) *recvProc {
	addr := testenv.Addr(testenv.FreePort(b.t))
	r := b.startReceiver("endpoint", "-listen", addr, "-domain", domain, "-secret", secret)
	r.addr = addr
	return r
}

func (b *bench) startReceiver(name string, args ...string) *recvProc {
	hp := testenv.FreePort(b.t)
	dir := b.t.TempDir()
	r := &recvProc{t: b.t, name: name, base: "http://" + testenv.Addr(hp), log: filepath.Join(dir, "receiver.log"),
		hc: &http.Client{Timeout: 10 * time.Second}, wc: &http.Client{}}
	r.proc = testenv.StartProcess(b.t, r.log, nil, filepath.Join(b.bin, "receiver"), append(args, "-http", testenv.Addr(hp))...)
	p := r.proc
	b.t.Cleanup(func() { _ = p.Stop() })
	testenv.Eventually(b.t, 15*time.Second, func() bool {
		select {
		case <-p.Exited():
			b.t.Fatalf("receiver %s exited: %s%s", name, p.State(), r.tail())
		default:
		}
		_, err := r.get("/stats")
		return err == nil
	}, "receiver %s does not answer on %s", name, r.base)
	return r
}

func (r *recvProc) tail() string { return "; its log:\n" + testenv.Tail(r.log) }

func (r *recvProc) get(path string) ([]byte, error) {
	resp, err := r.hc.Get(r.base + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return body, err
}

func (r *recvProc) stats() recvStats {
	body, err := r.get("/stats")
	var st recvStats
	if err == nil {
		err = json.Unmarshal(body, &st)
	}
	if err != nil {
		r.t.Fatalf("receiver %s: %v%s", r.name, err, r.tail())
	}
	return st
}

func (r *recvProc) expect(domain string, n int) func(time.Duration) (time.Time, error) {
	resp, err := r.hc.Post(r.base+"/watch?key="+url.QueryEscape(domain)+"&add="+strconv.Itoa(n), "", nil)
	if err != nil {
		r.t.Fatalf("receiver %s: watch: %v%s", r.name, err, r.tail())
	}
	var w struct{ ID int64 }
	err = json.NewDecoder(resp.Body).Decode(&w)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		r.t.Fatalf("receiver %s: watch: %d %v", r.name, resp.StatusCode, err)
	}
	return func(within time.Duration) (time.Time, error) {
		ctx, cancel := context.WithTimeout(context.Background(), within+10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/wait?id=%d&timeout=%s", r.base, w.ID, within), nil)
		resp, err := r.wc.Do(req)
		if err != nil {
			return time.Time{}, fmt.Errorf("receiver %s: %w", r.name, err)
		}
		defer resp.Body.Close()
		var got struct {
			At    int64  `json:"at"`
			Count int64  `json:"count"`
			Error string `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			return time.Time{}, fmt.Errorf("receiver %s: %w", r.name, err)
		}
		if resp.StatusCode != http.StatusOK {
			return time.Time{}, fmt.Errorf("receiver %s (%d): %s", r.name, resp.StatusCode, got.Error)
		}
		return time.Unix(0, got.At), nil
	}
}

// cpu is the receiver's CPU time so far, as it reports it.
func (r *recvProc) cpu() time.Duration { return time.Duration(r.stats().CPUNanos) }

// selfCheck runs the receiver's in-memory self-check and returns its result.
func (b *bench) selfCheck(parser, payload string, n int) (stanzasPerCPUSecond float64, detail string) {
	out, err := exec.Command(filepath.Join(b.bin, "receiver"), "-selfcheck", "-parser", parser, "-payload", payload, "-n", strconv.Itoa(n)).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		b.t.Fatalf("receiver -selfcheck: %v %s", err, msg)
	}
	var res struct {
		Bytes   int     `json:"bytes"`
		Seconds float64 `json:"seconds"`
		CPU     float64 `json:"cpu_seconds"`
		PerSec  float64 `json:"stanzas_per_cpu_second"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		b.t.Fatalf("receiver -selfcheck: %v: %s", err, out)
	}
	return res.PerSec, fmt.Sprintf("%.2f µs CPU a stanza; %d B a stanza; %d stanzas parsed in %.2f s", 1e6/res.PerSec, res.Bytes/n, n, res.Seconds)
}
