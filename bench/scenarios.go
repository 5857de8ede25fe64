package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"mellium.im/xmpp/stanza"

	"starling.dev/starling/internal/testenv"
)

// sizes are the audience sizes and durations of one mode.
type sizes struct {
	raw       []int // raw component → Prosody
	ejabberd  []int // raw component → ejabberd
	starling  []int // whole pipeline → Prosody
	alone     []int // whole pipeline → bare endpoint
	rawMin    int   // raw → Prosody with a minimal stanza (body and origin-id only)
	big       int   // the celebrity fanout the probes run beside, bare endpoint
	bigP      int   // the same through Prosody (one of starling)
	probes    int   // small posts per latency run
	startups  int   // gateway starts per follower count
	roster    int   // items in the client bot's roster
	logins    int   // client bot logins
	peer      []int // Prosody PubSub subscribers
	ingestFor time.Duration
	clients   int // concurrent HTTP clients of the ingest run
}

var quickSizes = sizes{
	raw: []int{10_000}, rawMin: 10_000, ejabberd: []int{10_000}, starling: []int{10_000}, alone: []int{10_000, 100_000},
	big: 100_000, bigP: 10_000, probes: 20, startups: 3, roster: 40_000, logins: 2, peer: []int{10_000},
	ingestFor: 2 * time.Second, clients: 32,
}

var fullSizes = sizes{
	raw: []int{10_000, 1_000_000}, rawMin: 100_000, ejabberd: []int{100_000},
	starling: []int{10_000, 100_000, 1_000_000}, alone: []int{10_000, 100_000, 1_000_000},
	big: 1_000_000, bigP: 1_000_000, probes: 100, startups: 5, roster: 40_000, logins: 3, peer: []int{10_000, 100_000},
	ingestFor: 10 * time.Second, clients: 32,
}

// bench runs the scenarios and records their figures.
type bench struct {
	t       *runner
	s       *stack
	sz      sizes
	res     *results
	only    map[string]bool
	profDir string
	cmd     func(scenario string) string

	prosodyPID int
	durations  map[string]time.Duration // "starling/N", "alone/N": time after the 202
}

func (b *bench) want(scenario string) bool { return len(b.only) == 0 || b.only[scenario] }

func celebrity(n int) string { return "c" + strconv.Itoa(n) }

func smallAuthor(i int) string { return "s" + strconv.Itoa(i%10) }

func smallFollower(author, k int) string {
	return "l" + strconv.Itoa(author*10+k) + "@" + latDomain
}

// within is a generous bound for n stanzas at no less than 4,000 a second.
func within(n int) time.Duration { return 30*time.Second + time.Duration(n/4000)*time.Second }

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// receiver: the raw sender writing into the bare endpoint over loopback,
// both in this process. It shows the counting receiver is far faster than
// any server it measures, and what the endpoint costs per stanza.
func (b *bench) receiver() {
	n := 200_000
	if b.sz.big >= 1_000_000 {
		n = 1_000_000
	}
	ep := startEndpoint(b.t, "microblog.localhost", "test-secret")
	r := dialRaw(b.t, ep.addr(), "microblog.localhost", "test-secret", "localhost", 8)
	post := benchPost("receiver", "01BENCHRECEIVER")
	cpu0, t0 := cpuNow(), time.Now()
	if err := r.send(post, n, 500, follower, within(n)); err != nil {
		b.t.Fatalf("receiver self-check: %v", err)
	}
	at, err := ep.sc.Await(patMessage, int64(n), 10*time.Second)
	if err != nil {
		b.t.Fatalf("receiver self-check: %v", err)
	}
	wall, cpu := at.Sub(t0), cpuNow()-cpu0
	b.res.add(figure{Key: "receiver.rate", Scenario: "receiver", Name: "raw writer → bare endpoint (loopback, in-process)", N: n,
		Value: float64(n) / wall.Seconds(), Unit: "stanzas/s", Command: b.cmd("receiver"),
		Detail: fmt.Sprintf("%s; %.2f µs CPU/stanza for writer and endpoint together; %.0f MB", wall.Round(time.Millisecond), us(cpu, n), float64(ep.sc.Bytes())/1e6)})
	b.res.add(figure{Key: "receiver.cpu", Scenario: "receiver", Name: "CPU per stanza, raw writer + bare endpoint", N: n,
		Value: us(cpu, n), Unit: "µs/stanza", Command: b.cmd("receiver")})
	r.close()
}

func us(d time.Duration, n int) float64 { return float64(d.Microseconds()) / float64(n) }

// raw: Starling's stanzas written by a minimal component to the sink through
// the XMPP server: the server's routing limit.
func (b *bench) rawProsody() {
	info := b.s.pros.Info()
	r := dialRaw(b.t, info.ComponentAddr, info.ComponentDomain, info.Secret, info.Host, 8)
	defer r.close()
	for _, n := range b.sz.raw {
		b.t.progress("raw → Prosody, %d stanzas", n)
		post := benchPost("raw", fmt.Sprintf("01BENCHRAWPROSODY%d", n))
		wall, busy := b.rawThroughProsody(n, func() error { return r.send(post, n, 500, follower, within(n)) })
		b.res.add(figure{Key: "raw.prosody." + strconv.Itoa(n), Scenario: "raw", Name: "raw component → Prosody → sink", N: n,
			Value: float64(n) / wall.Seconds(), Unit: "stanzas/s", Command: b.cmd("raw"),
			Detail: fmt.Sprintf("last stanza after %s; Prosody CPU %.0f%% of one core", wall.Round(time.Millisecond), busy)})
	}
	if n := b.sz.rawMin; n > 0 {
		b.t.progress("raw → Prosody, %d minimal stanzas", n)
		post := benchPost("raw", fmt.Sprintf("01BENCHRAWMIN%d", n))
		wall, busy := b.rawThroughProsody(n, func() error { return r.sendMinimal(post, n, 500, follower, within(n)) })
		b.res.add(figure{Key: "raw.prosody.minimal." + strconv.Itoa(n), Scenario: "raw", Name: "raw component → Prosody → sink, minimal stanza (body + origin-id, no Atom entry)", N: n,
			Value: float64(n) / wall.Seconds(), Unit: "stanzas/s", Command: b.cmd("raw"),
			Detail: fmt.Sprintf("last stanza after %s; Prosody CPU %.0f%% of one core; %d B a stanza", wall.Round(time.Millisecond), busy, len(minimalStanza(post, follower(0))))})
	}
}

// rawThroughProsody runs send and returns the time until the sink counted n
// more stanzas and Prosody's CPU over that time, in percent of one core.
func (b *bench) rawThroughProsody(n int, send func() error) (time.Duration, float64) {
	base := b.s.sink.Scan.Count(patMessage)
	p0 := procCPU(b.prosodyPID)
	t0 := time.Now()
	if err := send(); err != nil {
		b.t.Fatalf("raw → prosody: %v", err)
	}
	at, err := b.s.sink.Scan.Await(patMessage, base+int64(n), within(n))
	if err != nil {
		b.t.Fatalf("raw → prosody: %v", err)
	}
	wall := at.Sub(t0)
	return wall, 100 * (procCPU(b.prosodyPID) - p0).Seconds() / wall.Seconds()
}

func (b *bench) rawEjabberd() {
	mark := b.t.Mark()
	defer b.t.Unwind(mark) // stops ejabberd
	b.t.progress("starting ejabberd")
	ej := testenv.StartEjabberd(b.t, testenv.WithComponents(sinkDomain))
	info := ej.Info()
	sk := testenv.StartSink(b.t, ej.ComponentAddrOf(sinkDomain), info.Secret, sinkDomain)
	// A ping every 500 stanzas and at most 8 unanswered: ≤ 4,000 stanzas
	// queued in ejabberd, under its max_fsm_queue of 10,000.
	r := dialRaw(b.t, info.ComponentAddr, info.ComponentDomain, info.Secret, info.Host, 8)
	for _, n := range b.sz.ejabberd {
		b.t.progress("raw → ejabberd, %d stanzas", n)
		post := benchPost("raw", fmt.Sprintf("01BENCHRAWEJABBERD%d", n))
		base := sk.Scan.Count(patMessage)
		t0 := time.Now()
		if err := r.send(post, n, 500, follower, within(n)); err != nil {
			b.t.Fatalf("raw → ejabberd: %v (sink counted %d messages, %d iq; sender saw %d iq)\n%s", err, sk.Scan.Count(patMessage)-base, sk.Scan.Count(patIQ), r.sc.Count(0), ej.Log())
		}
		at, err := sk.Scan.Await(patMessage, base+int64(n), within(n))
		if err != nil {
			b.t.Fatalf("raw → ejabberd: %v", err)
		}
		wall := at.Sub(t0)
		b.res.add(figure{Key: "raw.ejabberd." + strconv.Itoa(n), Scenario: "raw", Name: "raw component → ejabberd → sink", N: n,
			Value: float64(n) / wall.Seconds(), Unit: "stanzas/s", Command: b.cmd("raw"),
			Detail: fmt.Sprintf("last stanza after %s; paced: ping per 500, window 8", wall.Round(time.Millisecond))})
	}
	b.t.progress("stopping ejabberd")
}

// loadAudiences stores the celebrities' followers, the largest first, and
// reports Redis memory per follow edge for the largest.
func (b *bench) loadAudiences(ns []int) {
	ns = slices.Clone(ns)
	slices.Sort(ns)
	slices.Reverse(ns)
	ctx := context.Background()
	for i, n := range ns {
		author := celebrity(n)
		if b.s.followers[author] >= n {
			continue
		}
		b.t.progress("loading %d followers of %s into Redis", n, author)
		mem0 := b.s.redisInfo("memory", "used_memory")
		keys0, _ := b.s.rdb.DBSize(ctx).Result()
		d := b.s.ensureFollowers(author, n, follower)
		b.res.add(figure{Key: "load." + strconv.Itoa(n), Scenario: "memory", Name: "load followers (store.AddFollowers, 1000 a pipeline, 4 connections)", N: n,
			Value: float64(n) / d.Seconds(), Unit: "edges/s", Command: b.cmd("memory"), Detail: d.Round(time.Millisecond).String()})
		if i != 0 {
			continue
		}
		mem1 := b.s.redisInfo("memory", "used_memory")
		keys1, _ := b.s.rdb.DBSize(ctx).Result()
		fkey := b.s.prefix + "f:{" + author + "}"
		fmem, ferr := b.s.rdb.MemoryUsage(ctx, fkey, 0).Result()
		total := (mem1 - mem0) / float64(n)
		detail := fmt.Sprintf("used_memory +%.1f MB, %d keys added", (mem1-mem0)/1e6, keys1-keys0)
		b.res.add(figure{Key: "memory.edge", Scenario: "memory", Name: "Redis memory per follow edge, all keys a follow writes", N: n,
			Value: total, Unit: "bytes/edge", Command: b.cmd("memory"), Detail: detail})
		if ferr == nil && fmem > 0 {
			b.res.add(figure{Key: "memory.f", Scenario: "memory", Name: "of which the followers set " + fkey, N: n,
				Value: float64(fmem) / float64(n), Unit: "bytes/edge", Command: b.cmd("memory"),
				Detail: fmt.Sprintf("MEMORY USAGE %s SAMPLES 0 = %.1f MB; the rest is the per-JID g: index", fkey, float64(fmem)/1e6)})
		}
	}
}

// starling: one post through API → JetStream → fanout → send → Prosody →
// sink; from the 202 to the last stanza counted. Beside the celebrity post
// of bigP followers, the small authors' latency probes run when asked: they
// add 10 stanzas a probe to a fanout of a million.
func (b *bench) starlingProsody(ns []int, record, probe bool) {
	for i, n := range ns {
		b.t.progress("starling → Prosody, one post to %d followers", n)
		var stop func()
		if i == len(ns)-1 {
			stop = b.profile("starling-prosody-" + strconv.Itoa(n))
		}
		p0 := procCPU(b.prosodyPID)
		c0 := cpuNow()
		base := b.s.sink.Scan.Count(patMessage)
		var wall time.Duration
		if probe && n == b.sz.bigP {
			var lats []time.Duration
			wall, lats = b.fanoutWithProbes(n, b.s.sink.Scan, patMessage, b.s.lat.Scan, patMessage, time.Duration(n/5)*time.Millisecond)
			b.addLatency("latency.Prosody.during", "Prosody", fmt.Sprintf("during a %s fanout", nLabel(n)), lats)
		} else {
			wall = b.fanout(n, b.s.sink.Scan, patMessage)
		}
		if stop != nil {
			stop()
		}
		pcpu, gcpu := procCPU(b.prosodyPID)-p0, cpuNow()-c0
		b.durations["starling/"+strconv.Itoa(n)] = wall
		b.s.drained(within(n))
		if !record {
			continue
		}
		extra := b.s.sink.Scan.Count(patMessage) - base - int64(n)
		b.res.add(figure{Key: "starling.prosody." + strconv.Itoa(n), Scenario: "starling", Name: "POST → pipeline → Prosody → sink", N: n,
			Value: float64(n) / wall.Seconds(), Unit: "stanzas/s", Command: b.cmd("starling"),
			Detail: fmt.Sprintf("last stanza %s after the 202; Prosody CPU %.0f%% of a core, bench process %.0f%%; %d extra stanzas (duplicates or probes)",
				wall.Round(time.Millisecond), 100*pcpu.Seconds()/wall.Seconds(), 100*gcpu.Seconds()/wall.Seconds(), extra)})
		b.res.add(figure{Key: "starling.prosody.secs." + strconv.Itoa(n), Scenario: "starling", Name: "202 → last stanza, through Prosody", N: n,
			Value: wall.Seconds(), Unit: "s", Command: b.cmd("starling")})
	}
}

// fanout posts as the celebrity with n followers and returns the time from
// the 202 to the n-th stanza counted by sc's pattern idx.
func (b *bench) fanout(n int, sc *testenv.Scanner, idx int) time.Duration {
	base := sc.Count(idx)
	_, t202 := b.s.post(celebrity(n), "hello followers")
	at, err := sc.Await(idx, base+int64(n), within(n))
	if err != nil {
		b.t.Fatalf("fanout to %d: %v (log %s)", n, err, b.s.logf.Name())
	}
	return at.Sub(t202)
}

// fanoutWithProbes is fanout with latency probes spread over expect.
func (b *bench) fanoutWithProbes(n int, big *testenv.Scanner, bigIdx int, sc *testenv.Scanner, idx int, expect time.Duration) (time.Duration, []time.Duration) {
	for a := range 10 {
		b.s.ensureFollowers(smallAuthor(a), 10, func(k int) string { return smallFollower(a, k) })
	}
	base := big.Count(bigIdx)
	_, t202 := b.s.post(celebrity(n), "big fanout under the probes")
	done := make(chan struct{})
	var bigWall time.Duration
	var bigErr error
	go func() {
		defer close(done)
		at, err := big.Await(bigIdx, base+int64(n), within(n))
		bigWall, bigErr = at.Sub(t202), err
	}()
	lats := b.probes(sc, idx, b.sz.probes, expect/time.Duration(b.sz.probes+1), done)
	<-done
	if bigErr != nil {
		b.t.Fatalf("fanout to %d under probes: %v (log %s)", n, bigErr, b.s.logf.Name())
	}
	return bigWall, lats
}

// alone: the same pipeline, its component connection to the bare endpoint.
func (b *bench) gatewayAlone(ep *endpoint) {
	for i, n := range b.sz.alone {
		b.t.progress("gateway alone → bare endpoint, one post to %d followers", n)
		var stop func()
		if i == len(b.sz.alone)-1 {
			stop = b.profile("gateway-alone-" + strconv.Itoa(n))
		}
		base := ep.sc.Count(patMessage)
		c0, r0 := cpuNow(), b.s.redisCPU()
		_, t202 := b.s.post(celebrity(n), "hello followers")
		at, err := ep.sc.Await(patMessage, base+int64(n), within(n))
		cpu, rcpu := cpuNow()-c0, b.s.redisCPU()-r0
		if stop != nil {
			stop()
		}
		if err != nil {
			b.t.Fatalf("gateway alone: %v (log %s)", err, b.s.logf.Name())
		}
		wall := at.Sub(t202)
		b.durations["alone/"+strconv.Itoa(n)] = wall
		b.s.drained(within(n))
		extra := ep.sc.Count(patMessage) - base - int64(n)
		ns := strconv.Itoa(n)
		b.res.add(figure{Key: "alone.rate." + ns, Scenario: "gateway", Name: "POST → pipeline → bare endpoint", N: n,
			Value: float64(n) / wall.Seconds(), Unit: "stanzas/s", Command: b.cmd("gateway"),
			Detail: fmt.Sprintf("last stanza %s after the 202; %d duplicates", wall.Round(time.Millisecond), extra)})
		b.res.add(figure{Key: "alone.secs." + ns, Scenario: "gateway", Name: "202 → last stanza, bare endpoint", N: n,
			Value: wall.Seconds(), Unit: "s", Command: b.cmd("gateway")})
		b.res.add(figure{Key: "alone.cpu." + ns, Scenario: "gateway", Name: "bench process CPU per stanza (gateway + in-process NATS + API + endpoint)", N: n,
			Value: us(cpu, n), Unit: "µs/stanza", Command: b.cmd("gateway"),
			Detail: fmt.Sprintf("%.2f s CPU in %.2f s (%.0f%% of the 2 cores); Redis server %.2f µs/stanza more", cpu.Seconds(), wall.Seconds(), 50*cpu.Seconds()/wall.Seconds(), rcpu*1e6/float64(n))})
	}
}

// latencyAlone: small authors (10 followers each) post one at a time;
// each probe is timed from sending the POST to the 10th delivery counted.
func (b *bench) latencyAlone(path string, sc *testenv.Scanner, idx int) {
	for a := range 10 {
		b.s.ensureFollowers(smallAuthor(a), 10, func(k int) string { return smallFollower(a, k) })
	}
	b.addLatency("latency."+path+".alone", path, "alone", b.probes(sc, idx, b.sz.probes, 0, nil))
}

func (b *bench) probes(sc *testenv.Scanner, idx, k int, interval time.Duration, stop <-chan struct{}) []time.Duration {
	var lats []time.Duration
	next := time.Now()
	for i := range k {
		if stop != nil {
			select {
			case <-stop:
				return lats
			default:
			}
		}
		base := sc.Count(idx)
		start := time.Now()
		b.s.post(smallAuthor(i), "small post "+strconv.Itoa(i))
		at, err := sc.Await(idx, base+10, 30*time.Second)
		if err != nil {
			b.t.Fatalf("latency probe %d: %v", i, err)
		}
		lats = append(lats, at.Sub(start))
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-stop:
				t.Stop()
				return lats
			}
		}
	}
	return lats
}

func (b *bench) addLatency(key, path, when string, lats []time.Duration) {
	if len(lats) == 0 {
		b.t.Errorf("%s: no probe finished", key)
		return
	}
	slices.Sort(lats)
	p := func(q float64) time.Duration { return lats[min(len(lats)-1, int(q*float64(len(lats))))] }
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	detail := fmt.Sprintf("%d posts; min %.1f, max %.1f ms", len(lats), ms(lats[0]), ms(lats[len(lats)-1]))
	b.res.add(figure{Key: key + ".p50", Scenario: "latency", Name: "p50 POST → 10th follower, via " + path + ", " + when, N: 10,
		Value: ms(p(0.50)), Unit: "ms", Command: b.cmd("latency"), Detail: detail})
	b.res.add(figure{Key: key + ".p99", Scenario: "latency", Name: "p99 POST → 10th follower, via " + path + ", " + when, N: 10,
		Value: ms(p(0.99)), Unit: "ms", Command: b.cmd("latency"), Detail: detail})
}

// startup: RunGateway called → /readyz 200 with the component connected
// (to Prosody), with the followers stored so far.
func (b *bench) startup(label string, followers int) {
	info := b.s.pros.Info()
	var ds []time.Duration
	for range b.sz.startups {
		g, d := b.s.startGateway(info.ComponentAddr)
		g.Stop()
		ds = append(ds, d)
	}
	slices.Sort(ds)
	b.res.add(figure{Key: "startup." + label, Scenario: "startup", Name: fmt.Sprintf("gateway start → ready and connected, %d follow edges stored", followers), N: followers,
		Value: float64(ds[len(ds)/2].Microseconds()) / 1000, Unit: "ms", Command: b.cmd("startup"),
		Detail: fmt.Sprintf("median of %d; max %.1f ms", len(ds), float64(ds[len(ds)-1].Microseconds())/1000)})
	b.res.add(figure{Key: "startup." + label + ".max", Scenario: "startup", Name: fmt.Sprintf("slowest of %d starts, %d edges stored", len(ds), followers), N: followers,
		Value: float64(ds[len(ds)-1].Microseconds()) / 1000, Unit: "ms", Command: b.cmd("startup")})
}

// rosterBot: the design Starling replaces, a client account whose roster
// holds every follower: TCP connect → SASL → bind → roster result.
func (b *bench) rosterBot() {
	pros := b.s.pros
	info := pros.Info()
	n := b.sz.roster
	pros.Register(b.t, "bot", "botpw")
	t0 := time.Now()
	if err := writeRoster(pros.DataDir(), info.Host, "bot", n, func(i int) string { return "r" + strconv.Itoa(i) + "@" + sinkDomain }); err != nil {
		b.t.Fatalf("roster: %v", err)
	}
	b.t.Logf("wrote a %d-item roster in %s", n, time.Since(t0))
	var ds []time.Duration
	for range b.sz.logins {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		start := time.Now()
		c, err := dialC2S(ctx, info.C2SAddr, "bot", info.Host, "botpw")
		if err != nil {
			cancel()
			b.t.Fatalf("roster bot: %v", err)
		}
		got, err := c.iq(ctx, "", stanza.GetIQ, `<query xmlns="jabber:iq:roster"/>`, "item")
		d := time.Since(start)
		c.close()
		cancel()
		if err != nil || got != n {
			b.t.Fatalf("roster bot: %d of %d items: %v", got, n, err)
		}
		ds = append(ds, d)
	}
	slices.Sort(ds)
	b.res.add(figure{Key: "startup.rosterbot", Scenario: "startup", Name: fmt.Sprintf("client bot: c2s connect → roster of %d items received (Prosody)", n), N: n,
		Value: float64(ds[len(ds)/2].Microseconds()) / 1000, Unit: "ms", Command: b.cmd("startup"),
		Detail: fmt.Sprintf("median of %d logins; max %.1f ms; roster written as data/localhost/roster/bot.dat", len(ds), float64(ds[len(ds)-1].Microseconds())/1000)})
}

// peer: Prosody's own PubSub publishing one item to a node whose
// subscribers are sink JIDs. Subscribing many JIDs by IQ is out of reach
// (Prosody 0.12 re-serializes the whole node on every subscribe: O(N²)), so
// the nodes are written into Prosody's storage, as a service running for
// years holds them, and Prosody is restarted to load them. A second Prosody
// does this, so the first keeps its state.
func (b *bench) peer() {
	mark := b.t.Mark()
	defer b.t.Unwind(mark)
	pros := testenv.StartProsody(b.t, testenv.WithComponents(sinkDomain), testenv.WithPubSub(pubsubDomain, pubOwner+"@localhost"))
	info := pros.Info()
	pros.Register(b.t, pubOwner, "ownerpw")
	t0 := time.Now()
	for _, n := range b.sz.peer {
		if err := writeNode(pros.DataDir(), pubsubDomain, "bench"+strconv.Itoa(n), pubOwner+"@localhost", n, follower); err != nil {
			b.t.Fatalf("pubsub node: %v", err)
		}
	}
	b.t.Logf("wrote the PubSub nodes in %s", time.Since(t0))
	t0 = time.Now()
	pros.Restart(b.t)
	b.t.Logf("Prosody restarted with the nodes in %s", time.Since(t0))
	sk := testenv.StartSink(b.t, info.ComponentAddr, info.Secret, sinkDomain)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	b.t.Cleanup(cancel) // not before: mellium resets the deadlines when it ends
	owner, err := dialC2S(ctx, info.C2SAddr, pubOwner, info.Host, "ownerpw")
	if err != nil {
		b.t.Fatalf("pubsub owner: %v", err)
	}
	defer owner.close()
	pid := 0
	for _, p := range findPIDs(b.t.Root(), "prosody") {
		if p != b.prosodyPID {
			pid = p
		}
	}
	for _, n := range b.sz.peer {
		node := "bench" + strconv.Itoa(n)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		subs, err := owner.iq(ctx, pubsubDomain, stanza.GetIQ, `<pubsub xmlns="http://jabber.org/protocol/pubsub#owner"><subscriptions node="`+node+`"/></pubsub>`, "subscription")
		cancel()
		if err != nil || subs != n {
			b.t.Fatalf("pubsub node %s: %d subscriptions (want %d): %v", node, subs, n, err)
		}
		b.t.progress("PubSub: publishing one item to %d subscribers", n)
		base := sk.Scan.Count(patMessage)
		p0 := procCPU(pid)
		start := time.Now()
		var iqDone time.Duration
		var wg sync.WaitGroup
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), within(n))
			defer cancel()
			_, err := owner.iq(ctx, pubsubDomain, stanza.SetIQ, fmt.Sprintf(`<pubsub xmlns="http://jabber.org/protocol/pubsub"><publish node="%s"><item id="i1"><entry xmlns="http://www.w3.org/2005/Atom"><title>Bench post</title><content type="text">%s</content></entry></item></publish></pubsub>`, node, benchPost("x", "y").Text), "")
			if err != nil {
				b.t.Errorf("pubsub publish: %v", err)
			}
			iqDone = time.Since(start)
		})
		at, err := sk.Scan.Await(patMessage, base+int64(n), within(n))
		wg.Wait()
		if err != nil {
			b.t.Fatalf("pubsub: %v", err)
		}
		wall := at.Sub(start)
		pcpu := procCPU(pid) - p0
		b.res.add(figure{Key: "peer.pubsub." + strconv.Itoa(n), Scenario: "peer", Name: "Prosody PubSub: publish → last notification at the sink", N: n,
			Value: float64(n) / wall.Seconds(), Unit: "stanzas/s", Command: b.cmd("peer"),
			Detail: fmt.Sprintf("last notification after %s; publish answered after %s; Prosody CPU %.0f%% of a core", wall.Round(time.Millisecond), iqDone.Round(time.Millisecond), 100*pcpu.Seconds()/wall.Seconds())})
		b.res.add(figure{Key: "peer.pubsub.secs." + strconv.Itoa(n), Scenario: "peer", Name: "Prosody PubSub: publish → last notification", N: n,
			Value: wall.Seconds(), Unit: "s", Command: b.cmd("peer")})
	}
}

// ingest: posts/s through POST /v1/statuses (202 after JetStream's ack)
// from concurrent clients, beside async publishes straight to JetStream.
func (b *bench) ingest() {
	b.s.author("ingest")
	b.t.progress("ingest: %d clients for %s", b.sz.clients, b.sz.ingestFor)
	var ok, failed atomic.Int64
	stop := b.profile("ingest-api")
	start := time.Now()
	deadline := start.Add(b.sz.ingestFor)
	var wg sync.WaitGroup
	tok := b.s.author("ingest")
	for c := range b.sz.clients {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				code, err := b.s.call("POST", "/v1/statuses", tok, map[string]string{"text": fmt.Sprintf("ingest %d/%d", c, i)}, nil)
				if err == nil && code == 202 {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	if stop != nil {
		stop()
	}
	api := float64(ok.Load()) / wall.Seconds()
	b.res.add(figure{Key: "ingest.api", Scenario: "ingest", Name: fmt.Sprintf("POST /v1/statuses, %d HTTP clients, 202 after the JetStream ack", b.sz.clients),
		Value: api, Unit: "posts/s", Command: b.cmd("ingest"),
		Detail: fmt.Sprintf("%d accepted, %d failed in %s; the gateway consumes them meanwhile", ok.Load(), failed.Load(), wall.Round(time.Millisecond))})
	b.s.drained(time.Minute)

	// Raw: the same server, a stream configured like POSTS, async publish
	// with the post's JSON and a Nats-Msg-Id, 4096 pending at most.
	ctx := context.Background()
	if _, err := b.s.js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCHRAW", Subjects: []string{"benchraw.>"}, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute}); err != nil {
		b.t.Fatalf("raw stream: %v", err)
	}
	defer b.s.js.DeleteStream(ctx, "BENCHRAW")
	var perr atomic.Int64
	js, err := jetstream.New(b.s.nats.Conn(b.t), jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(10*time.Second),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { perr.Add(1) }))
	if err != nil {
		b.t.Fatal(err)
	}
	payload, _ := json.Marshal(benchPost("ingest", "01BENCHINGEST0000000000000"))
	start = time.Now()
	deadline = start.Add(b.sz.ingestFor)
	n := 0
	for ; time.Now().Before(deadline); n++ {
		if _, err := js.PublishAsync("benchraw.ingest", payload, jetstream.WithMsgID("raw-"+strconv.Itoa(n))); err != nil {
			b.t.Fatalf("raw publish: %v", err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		b.t.Fatalf("raw publish: acks missing")
	}
	wall = time.Since(start)
	b.res.add(figure{Key: "ingest.raw", Scenario: "ingest", Name: "JetStream PublishAsync on the same server (≤ 4096 pending, Msg-Id, file storage)",
		Value: float64(n-int(perr.Load())) / wall.Seconds(), Unit: "msgs/s", Command: b.cmd("ingest"),
		Detail: fmt.Sprintf("%d acked, %d failed, %d B each, in %s", n-int(perr.Load()), perr.Load(), len(payload), wall.Round(time.Millisecond))})
}
