// Command soak runs the whole system (gateway and API as separate
// processes, Prosody, an external nats-server, Redis with AOF) under mixed
// load for a while and reports the per-minute least-squares slope of the
// gateway's resident memory, goroutines and open files (from its /metrics)
// and of Redis's used_memory: flat is the goal.
//
// The load: many small authors posting, one celebrity post a minute to
// 20,000 followers at a counting sink, follows and unfollows through the
// API, presence churn from the sink's users, and IM commands from a c2s
// client.
//
//	go run ./internal/soak -soak.duration 30m     (make soak)
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"starling.dev/starling/internal/chaos"
	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/internal/testenv/stack"
)

func main() {
	duration := flag.Duration("soak.duration", 30*time.Minute, "how long the load runs")
	every := flag.Duration("soak.sample", 10*time.Second, "how often the figures are sampled")
	celebrity := flag.Int("soak.followers", 20_000, "followers of the celebrity")
	authors := flag.Int("soak.authors", 100, "small authors")
	postEvery := flag.Duration("soak.post-every", 100*time.Millisecond, "time between two small authors' posts")
	celebEvery := flag.Duration("soak.celebrity-every", time.Minute, "time between two celebrity posts")
	verbose := flag.Bool("v", false, "log what the stack starts")
	flag.Parse()

	r := testenv.NewProgram("soak", *verbose)
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	code := run(ctx, r, config{*duration, *every, *celebrity, *authors, *postEvery, *celebEvery})
	r.Stop()
	os.Exit(code)
}

type config struct {
	duration, every       time.Duration
	celebrity, authors    int
	postEvery, celebEvery time.Duration
}

// counters are what the load did.
type counters struct {
	posts, postErrs, celebPosts   atomic.Int64
	follows, followErrs, presence atomic.Int64
	commands, replies             atomic.Int64
}

func run(ctx context.Context, r *testenv.Program, cfg config) int {
	fmt.Printf("soak: starting the stack (Prosody, Redis with AOF, nats-server, gateway and API processes)\n")
	s, sink := chaos.StartSystem(r, "prosody", nil)
	tokens := make([]string, cfg.authors)
	for i := range tokens {
		tokens[i] = s.CreateUser(r, fmt.Sprintf("a%d", i), fmt.Sprintf("Author %d", i))
		small := make([]string, 20)
		for k := range small {
			small[k] = fmt.Sprintf("s%d.%d@%s", i, k, chaos.SinkDomain)
		}
		chaos.LoadFollowers(r, s, fmt.Sprintf("a%d", i), small)
	}
	star := s.CreateUser(r, chaos.Author, "Star")
	chaos.LoadFollowers(r, s, chaos.Author, chaos.Followers(cfg.celebrity))
	bob := s.Client(r, "bob")
	fmt.Printf("soak: running %s of load; sampling every %s\n", cfg.duration, cfg.every)

	lctx, stopLoad := context.WithTimeout(ctx, cfg.duration)
	defer stopLoad()
	var c counters
	var wg sync.WaitGroup
	var celebIDs []string
	var celebMu sync.Mutex
	loops := []func(){
		// Small authors: one post every postEvery, round robin.
		func() {
			every(lctx, cfg.postEvery, func(i int) {
				var st stack.Status
				if _, err := s.Call("POST", "/v1/statuses", tokens[i%len(tokens)], map[string]string{"text": fmt.Sprintf("small post %d", i)}, &st); err != nil {
					c.postErrs.Add(1)
					return
				}
				c.posts.Add(1)
			})
		},
		// The celebrity: one post every celebEvery, the first at once.
		func() {
			post := func(i int) {
				var st stack.Status
				if _, err := s.Call("POST", "/v1/statuses", star, map[string]string{"text": fmt.Sprintf("celebrity post %d", i)}, &st); err != nil {
					c.postErrs.Add(1)
					return
				}
				c.celebPosts.Add(1)
				celebMu.Lock()
				celebIDs = append(celebIDs, st.ID)
				celebMu.Unlock()
			}
			post(0)
			every(lctx, cfg.celebEvery, func(i int) { post(i + 1) })
		},
		// Follows and unfollows through the API: a window of 200 late
		// followers moving along, so the graph does not grow.
		func() {
			every(lctx, 50*time.Millisecond, func(i int) {
				author := fmt.Sprintf("a%d", i%cfg.authors)
				if _, err := s.Call("PUT", "/v1/users/"+author+"/followers/"+url.PathEscape(fmt.Sprintf("late%d@%s", i, chaos.SinkDomain)), s.AdminToken, nil, nil); err != nil {
					c.followErrs.Add(1)
				} else {
					c.follows.Add(1)
				}
				if i >= 200 {
					old := i - 200
					_, _ = s.Call("DELETE", "/v1/users/"+fmt.Sprintf("a%d", old%cfg.authors)+"/followers/"+url.PathEscape(fmt.Sprintf("late%d@%s", old, chaos.SinkDomain)), s.AdminToken, nil, nil)
				}
			})
		},
		// Presence churn from the celebrity's followers.
		func() {
			every(lctx, 10*time.Millisecond, func(i int) {
				typ := ""
				if i%2 == 1 {
					typ = ` type="unavailable"`
				}
				if sink.Send(fmt.Sprintf(`<presence from="f%d@%s/soak" to="%s"%s/>`, rand.IntN(cfg.celebrity), chaos.SinkDomain, s.Server.ComponentDomain, typ)) {
					c.presence.Add(1)
				}
			})
		},
		// IM commands from a real c2s client.
		func() {
			cmds := []string{"follow a1", "following", "last a1", "help", "unfollow a1"}
			every(lctx, 500*time.Millisecond, func(i int) {
				bob.Send(r, s.Server.ComponentDomain, cmds[i%len(cmds)])
				c.commands.Add(1)
				c.replies.Add(int64(len(bob.Pending())))
			})
		},
	}
	for _, l := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l()
		}()
	}

	var samples []sample
	start := time.Now()
	take := func() {
		sm, err := measure(s)
		if err != nil {
			fmt.Fprintf(os.Stderr, "soak: sample: %v\n", err)
			return
		}
		sm.at = time.Since(start)
		samples = append(samples, sm)
		fmt.Printf("soak: %6s  rss %6.1f MiB  goroutines %5.0f  fds %4.0f  redis %6.1f MiB  posts %d (+%d celebrity, %d failed)  follows %d  presences %d  commands %d\n",
			sm.at.Round(time.Second), sm.rss/(1<<20), sm.goroutines, sm.fds, sm.redis/(1<<20),
			c.posts.Load(), c.celebPosts.Load(), c.postErrs.Load(), c.follows.Load(), c.presence.Load(), c.commands.Load())
	}
	take()
	tick := time.NewTicker(cfg.every)
	for done := false; !done; {
		select {
		case <-lctx.Done():
			done = true
		case <-tick.C:
			take()
		}
	}
	tick.Stop()
	wg.Wait()
	take()
	interrupted := ctx.Err() != nil

	// Let the last celebrity post finish, then count its deliveries.
	deadline := time.Now().Add(2 * time.Minute)
	celebMu.Lock()
	ids := celebIDs
	celebMu.Unlock()
	lost := 0
	for _, id := range ids {
		for time.Now().Before(deadline) && sink.Total(id) < cfg.celebrity {
			time.Sleep(100 * time.Millisecond)
		}
		t := sink.Tally(id)
		got := 0
		for _, f := range chaos.Followers(cfg.celebrity) {
			if t.Counts[f] > 0 {
				got++
			}
		}
		lost += cfg.celebrity - got
	}

	fmt.Printf("\nsoak: %s of load (%d samples); %d small posts (%d failed), %d celebrity posts to %d followers (%d deliveries lost), %d follows (%d failed), %d presences, %d IM commands (%d replies)\n",
		samples[len(samples)-1].at.Round(time.Second), len(samples), c.posts.Load(), c.postErrs.Load(), c.celebPosts.Load(), cfg.celebrity, lost,
		c.follows.Load(), c.followErrs.Load(), c.presence.Load(), c.commands.Load(), c.replies.Load())
	printSlopes(samples)
	if interrupted {
		fmt.Println("soak: interrupted before the end")
		return 1
	}
	if lost > 0 {
		return 1
	}
	return 0
}

// every calls f(0), f(1)... every d until ctx ends.
func every(ctx context.Context, d time.Duration, f func(i int)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f(i)
	}
}

// sample is one reading of the figures.
type sample struct {
	at                          time.Duration
	rss, goroutines, fds, redis float64
}

// measure reads the gateway's /metrics and Redis's INFO memory.
func measure(s *stack.Stack) (sample, error) {
	var sm sample
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(s.Gateway.Ops + "/metrics")
	if err != nil {
		return sm, err
	}
	defer resp.Body.Close()
	want := map[string]*float64{
		"process_resident_memory_bytes": &sm.rss, "go_goroutines": &sm.goroutines, "process_open_fds": &sm.fds,
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if p := want[name]; ok && p != nil {
			*p, _ = strconv.ParseFloat(val, 64)
			delete(want, name)
		}
	}
	if len(want) > 0 {
		return sm, fmt.Errorf("the gateway's /metrics lacks %v", want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := s.RDB.Info(ctx, "memory").Result()
	if err != nil {
		return sm, err
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			sm.redis, _ = strconv.ParseFloat(v, 64)
		}
	}
	return sm, nil
}

// slope is the least-squares slope of ys over xs (minutes), per minute.
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// printSlopes prints, for each figure, its first, last, min and max and its
// slope per minute over the whole run and after the first fifth (warm-up).
func printSlopes(samples []sample) {
	warm := len(samples) / 5
	figures := []struct {
		name string
		unit float64
		get  func(sample) float64
	}{
		{"gateway RSS (MiB)", 1 << 20, func(s sample) float64 { return s.rss }},
		{"gateway goroutines", 1, func(s sample) float64 { return s.goroutines }},
		{"gateway open fds", 1, func(s sample) float64 { return s.fds }},
		{"Redis used_memory (MiB)", 1 << 20, func(s sample) float64 { return s.redis }},
	}
	fmt.Printf("\n| figure | first | last | min | max | slope/min (all) | slope/min (after warm-up) |\n|---|---|---|---|---|---|---|\n")
	for _, f := range figures {
		var xs, ys []float64
		lo, hi := f.get(samples[0]), f.get(samples[0])
		for _, s := range samples {
			v := f.get(s)
			xs, ys = append(xs, s.at.Minutes()), append(ys, v/f.unit)
			lo, hi = min(lo, v), max(hi, v)
		}
		fmt.Printf("| %s | %.1f | %.1f | %.1f | %.1f | %+.2f | %+.2f |\n", f.name,
			f.get(samples[0])/f.unit, f.get(samples[len(samples)-1])/f.unit, lo/f.unit, hi/f.unit,
			slope(xs, ys), slope(xs[warm:], ys[warm:]))
	}
}
