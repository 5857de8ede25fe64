package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"mellium.im/xmpp/stanza"

	"starling.dev/starling/internal/testenv"
	teststack "starling.dev/starling/internal/testenv/stack"
	"starling.dev/starling/xmpp"
)

// sizes are the audience sizes and durations of one mode.
type sizes struct {
	raw       []int // raw component → Prosody, minimal stanza
	rawAtom   int   // raw component → Prosody, Atom stanza
	ejabberd  []int // raw component → ejabberd, both stanzas
	starling  []int // whole pipeline → Prosody
	alone     []int // whole pipeline → bare endpoint
	big       int   // the celebrity fanout the probes run beside, bare endpoint
	bigP      int   // the same through Prosody (one of starling)
	probes    int   // small posts per latency run
	startups  int   // gateway starts per follower count
	roster    int   // items in the client bot's roster
	logins    int   // client bot logins
	peer      []int // Prosody PubSub subscribers
	receiver  int   // stanzas of the receiver self-check
	ingestFor time.Duration
	clients   int // concurrent HTTP clients of the ingest run
}

var quickSizes = sizes{
	raw: []int{10_000}, rawAtom: 10_000, ejabberd: []int{10_000}, starling: []int{10_000}, alone: []int{10_000, 100_000},
	big: 100_000, bigP: 10_000, probes: 20, startups: 3, roster: 40_000, logins: 2, peer: []int{10_000}, receiver: 200_000,
	ingestFor: 2 * time.Second, clients: 32,
}

var fullSizes = sizes{
	raw: []int{10_000, 100_000, 1_000_000}, rawAtom: 100_000, ejabberd: []int{100_000},
	starling: []int{10_000, 100_000, 1_000_000}, alone: []int{10_000, 100_000, 1_000_000},
	big: 1_000_000, bigP: 1_000_000, probes: 100, startups: 5, roster: 40_000, logins: 3, peer: []int{10_000, 100_000}, receiver: 1_000_000,
	ingestFor: 10 * time.Second, clients: 32,
}

// secondary is the in-process view's sizes in a default run: the same
// audiences without the million through Prosody (three minutes that show
// nothing new: Prosody is the limit either way).
func (sz sizes) secondary() sizes {
	out := sz
	out.starling = nil
	for _, n := range sz.starling {
		if n < 1_000_000 {
			out.starling = append(out.starling, n)
		}
	}
	if len(out.starling) > 0 {
		out.bigP = out.starling[len(out.starling)-1]
	}
	return out
}

// view is one way of running the system: the headline view (the built
// binaries as separate processes, a receiver process that parses XML) or
// the in-process view (the gateway and the API in the bench process, byte
// counting receivers).
type view struct {
	name   string // "process" or "in-process"
	inproc bool
	prefix string // of its figures' keys
	flag   string // its command-line flag
}

var (
	processView   = view{name: "process"}
	inprocessView = view{name: "in-process", inproc: true, prefix: "inproc.", flag: " -inprocess"}
)

// bench runs the scenarios and records their figures.
type bench struct {
	t       *runner
	sz      sizes
	res     *results
	only    map[string]bool
	profDir string
	base    string // "go run ./bench", with -quick when quick
	bin     string // the receiver and minimalapi binaries
	v       view
	scens   map[string]bool // the scenarios of this view; nil: all

	s          *stack
	prosodyPID int
	apiPID     int
	natsPID    int
	durations  map[string]time.Duration // "starling/N", "alone/N": time after the 202
}

func (b *bench) want(scenario string) bool {
	return (len(b.only) == 0 || b.only[scenario]) && (b.scens == nil || b.scens[scenario])
}

// cmd is the command that reproduces a scenario's figures in this view.
func (b *bench) cmd(scenario string) string { return b.base + b.v.flag + " -only " + scenario }

// add records a figure of this view.
func (b *bench) add(f figure) {
	f.Key = b.v.prefix + f.Key
	f.View = b.v.name
	if f.Command == "" {
		f.Command = b.cmd(f.Scenario)
	}
	b.res.add(f)
}

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

func us(d time.Duration, n int) float64 { return float64(d.Nanoseconds()) / 1000 / float64(n) }

// meter reads the CPU time of the processes a figure involves.
type meter struct {
	names []string
	reads []func() time.Duration
	base  []time.Duration
}

func (m *meter) add(name string, read func() time.Duration) *meter {
	m.names = append(m.names, name)
	m.reads = append(m.reads, read)
	return m
}

func (m *meter) start() *meter {
	m.base = m.base[:0]
	for _, r := range m.reads {
		m.base = append(m.base, r())
	}
	return m
}

// since says how much CPU each process used since start, per item (n of
// them) and in percent of one core over wall.
func (m *meter) since(wall time.Duration, n int, per string) string {
	var parts []string
	for i, r := range m.reads {
		d := r() - m.base[i]
		parts = append(parts, fmt.Sprintf("%s %.2f µs/%s (%.0f%% of a core)", m.names[i], us(d, n), per, 100*d.Seconds()/wall.Seconds()))
	}
	return strings.Join(parts, ", ")
}

// used is how much CPU the named process used since start.
func (m *meter) used(name string) time.Duration {
	for i, n := range m.names {
		if n == name {
			return m.reads[i]() - m.base[i]
		}
	}
	return 0
}

// meter returns a meter of the parts of the system in this view, with the
// gateway g (nil: none) and the receivers given.
func (b *bench) meter(g *teststack.Gateway, recvs ...*recvProc) *meter {
	m := &meter{}
	if b.v.inproc {
		m.add("bench process (gateway, API, NATS, receivers)", cpuNow)
	} else {
		if g != nil {
			pid := g.Pid()
			m.add("gateway", func() time.Duration { return procCPU(pid) })
		}
		api, nats := b.apiPID, b.natsPID
		m.add("api", func() time.Duration { return procCPU(api) })
		m.add("nats-server", func() time.Duration { return procCPU(nats) })
		for _, r := range recvs {
			if r == nil {
				continue
			}
			m.add("receiver", r.cpu)
		}
	}
	if b.s != nil {
		m.add("redis-server", func() time.Duration { return time.Duration(b.s.redisCPU() * float64(time.Second)) })
	}
	return m
}

// withMachine adds the whole machine's busy time, every process on it (the
// machine is shared: when it is near 200% of 2 cores, the figure is the
// machine's, not the system's).
func (m *meter) withMachine() *meter { return m.add("machine (every process)", machineBusy) }

// machineBusy is the time all CPUs spent not idle, from /proc/stat.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i != 3 && i != 4 && i < 8 { // idle and iowait; guest time is in user already
			busy += n
		}
	}
	return time.Duration(busy) * (time.Second / 100)
}

// farEnd is the far end a gateway connects to instead of an XMPP server:
// a receiver process, or the in-process byte counter (stream.go).
type farEnd struct {
	addr string
	c    counter
	recv *recvProc // headline view
}

func (b *bench) startFarEnd(domain, secret string) farEnd {
	if b.v.inproc {
		ep := startEndpoint(b.t, domain, secret, "@"+latDomain, "@"+sinkDomain)
		return farEnd{addr: ep.addr(), c: scanCounter{sc: ep.sc, idx: map[string]int{latDomain: 1, sinkDomain: 2}}}
	}
	r := b.startEndpointReceiver(domain, secret)
	return farEnd{addr: r.addr, c: r, recv: r}
}

// sinkOn connects a counting component for domain to an XMPP server.
func (b *bench) sinkOn(addr, secret, domain string) (counter, *recvProc) {
	if b.v.inproc {
		return scanCounter{sc: testenv.StartSink(b.t, addr, secret, domain).Scan}, nil
	}
	r := b.startComponentReceiver(addr, secret, domain)
	return r, r
}

// receiver shows the far end is not what the figures measure: the receiver
// process's own capacity, parsing in memory and over loopback; in the
// in-process view the byte-counting endpoint's.
func (b *bench) receiver() {
	n := b.sz.receiver
	if b.v.inproc {
		b.receiverInProcess(n)
		return
	}
	for _, c := range []struct {
		parser, payload string
		n               int
	}{{"scan", "minimal", n}, {"scan", "atom", n}, {"encoding/xml", "minimal", max(n/10, 20_000)}} {
		rate, detail := b.selfCheck(c.parser, c.payload, c.n)
		b.add(figure{Key: "receiver.parse." + strings.ReplaceAll(c.parser, "/", "-") + "." + c.payload, Scenario: "receiver",
			Name: fmt.Sprintf("receiver parses %s deliveries in memory (%s tokenizer), one core", c.payload, c.parser), N: c.n,
			Value: rate, Unit: "stanzas/CPU-s", Detail: detail})
	}
	ep := b.startEndpointReceiver("microblog.localhost", "test-secret")
	r := dialRaw(b.t, ep.addr, "microblog.localhost", "test-secret", "localhost", 8)
	defer r.close()
	d := xmpp.NewDelivery("microblog.localhost", xmpp.PayloadMinimal, benchPost("receiver", "01BENCHRECEIVER00000000000"))
	wait := ep.expect(sinkDomain, n)
	m := (&meter{}).add("receiver", ep.cpu).add("bench (raw writer)", cpuNow).start()
	t0 := time.Now()
	if err := r.send(d, n, 500, follower, within(n)); err != nil {
		b.t.Fatalf("receiver self-check: %v", err)
	}
	at, err := wait(10 * time.Second)
	if err != nil {
		b.t.Fatalf("receiver self-check: %v", err)
	}
	wall := at.Sub(t0)
	rcpu := m.used("receiver")
	b.add(figure{Key: "receiver.loopback", Scenario: "receiver", Name: "raw writer (bench) → receiver process, loopback TCP, minimal deliveries", N: n,
		Value: float64(n) / wall.Seconds(), Unit: "stanzas/s",
		Detail: fmt.Sprintf("%s; receiver %.2f µs CPU a stanza (%.0f%% of a core), bench %.2f µs", wall.Round(time.Millisecond), us(rcpu, n), 100*rcpu.Seconds()/wall.Seconds(), us(m.used("bench (raw writer)"), n))})
	b.add(figure{Key: "receiver.capacity", Scenario: "receiver", Name: "receiver capacity on the wire (stanzas per CPU-second of the receiver process)", N: n,
		Value: float64(n) / rcpu.Seconds(), Unit: "stanzas/CPU-s", Detail: "parse, count, answer pings, read the socket"})
}

// receiverInProcess: the raw sender writing into the byte-counting
// endpoint over loopback, both in the bench process.
func (b *bench) receiverInProcess(n int) {
	ep := startEndpoint(b.t, "microblog.localhost", "test-secret")
	r := dialRaw(b.t, ep.addr(), "microblog.localhost", "test-secret", "localhost", 8)
	defer r.close()
	d := xmpp.NewDelivery("microblog.localhost", xmpp.PayloadMinimal, benchPost("receiver", "01BENCHRECEIVER00000000000"))
	cpu0, t0 := cpuNow(), time.Now()
	if err := r.send(d, n, 500, follower, within(n)); err != nil {
		b.t.Fatalf("receiver self-check: %v", err)
	}
	at, err := ep.sc.Await(patMessage, int64(n), 10*time.Second)
	if err != nil {
		b.t.Fatalf("receiver self-check: %v", err)
	}
	wall, cpu := at.Sub(t0), cpuNow()-cpu0
	b.add(figure{Key: "receiver.rate", Scenario: "receiver", Name: "raw writer → byte-counting endpoint (loopback, both in the bench process)", N: n,
		Value: float64(n) / wall.Seconds(), Unit: "stanzas/s",
		Detail: fmt.Sprintf("%s; %.2f µs CPU/stanza for writer and endpoint together; %.0f MB", wall.Round(time.Millisecond), us(cpu, n), float64(ep.sc.Bytes())/1e6)})
}

// raw: Starling's stanzas, both payloads, written by a minimal component to
// the sink through the XMPP server: the server's routing limit.
func (b *bench) rawProsody() {
	info := b.s.pros.Info()
	r := dialRaw(b.t, info.ComponentAddr, info.ComponentDomain, info.Secret, info.Host, 8)
	defer r.close()
	for _, n := range b.sz.raw {
		b.rawRun(r, "Prosody", xmpp.PayloadMinimal, n, b.s.sink, b.prosodyPID)
	}
	if n := b.sz.rawAtom; n > 0 {
		b.rawRun(r, "Prosody", xmpp.PayloadAtom, n, b.s.sink, b.prosodyPID)
	}
}

// rawRun writes n deliveries with payload through server and records the
// time until the sink counted the last.
func (b *bench) rawRun(r *rawSender, server string, payload xmpp.Payload, n int, sink counter, serverPID int) time.Duration {
	b.t.progress("raw → %s, %d %s stanzas", server, n, payload)
	post := benchPost("raw", fmt.Sprintf("01BENCHRAW%s%010d", strings.ToUpper(string(payload[:2])), n))
	d := xmpp.NewDelivery(b.s.pros.Info().ComponentDomain, payload, post)
	wait := sink.expect(sinkDomain, n)
	p0 := procCPU(serverPID)
	t0 := time.Now()
	if err := r.send(d, n, 500, follower, within(n)); err != nil {
		b.t.Fatalf("raw → %s: %v", server, err)
	}
	at, err := wait(within(n))
	if err != nil {
		b.t.Fatalf("raw → %s: %v", server, err)
	}
	wall := at.Sub(t0)
	cpu := ""
	if serverPID != 0 {
		cpu = fmt.Sprintf("; %s CPU %.0f%% of a core", server, 100*(procCPU(serverPID)-p0).Seconds()/wall.Seconds())
	}
	srv := strings.ToLower(server)
	b.add(figure{Key: "raw." + srv + "." + string(payload) + "." + strconv.Itoa(n), Scenario: "raw",
		Name: fmt.Sprintf("raw component → %s → sink, %s stanza (%d B)", server, payload, len(d.AppendTo(nil, follower(n-1)))), N: n,
		Value: float64(n) / wall.Seconds(), Unit: "stanzas/s",
		Detail: fmt.Sprintf("last stanza after %s%s; a ping per 500, 8 unanswered at most", wall.Round(time.Millisecond), cpu)})
	return wall
}

func (b *bench) rawEjabberd() {
	mark := b.t.Mark()
	defer b.t.Unwind(mark) // stops ejabberd
	b.t.progress("starting ejabberd")
	ej := testenv.StartEjabberd(b.t, testenv.WithComponents(sinkDomain))
	info := ej.Info()
	sink, _ := b.sinkOn(ej.ComponentAddrOf(sinkDomain), info.Secret, sinkDomain)
	// ejabberd's CPU is not shown: its folder, which would tell its
	// process from other ejabberds on this machine, is testenv's secret.
	pid := 0
	// A ping every 500 stanzas and at most 8 unanswered: ≤ 4,000 stanzas
	// queued in ejabberd, under its max_fsm_queue of 10,000.
	r := dialRaw(b.t, info.ComponentAddr, info.ComponentDomain, info.Secret, info.Host, 8)
	defer r.close()
	for _, n := range b.sz.ejabberd {
		b.rawRun(r, "ejabberd", xmpp.PayloadMinimal, n, sink, pid)
		b.rawRun(r, "ejabberd", xmpp.PayloadAtom, n, sink, pid)
	}
	b.t.progress("stopping ejabberd")
}

// loadAudiences stores the celebrities' followers, the largest first, and
// reports Redis memory per follow edge for the largest.
func (b *bench) loadAudiences(ns []int, record bool) {
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
		if !record {
			continue
		}
		b.add(figure{Key: "load." + strconv.Itoa(n), Scenario: "memory", Name: "load followers (store.AddFollowers, 1000 a pipeline, 4 connections)", N: n,
			Value: float64(n) / d.Seconds(), Unit: "edges/s", Detail: d.Round(time.Millisecond).String()})
		if i != 0 {
			continue
		}
		mem1 := b.s.redisInfo("memory", "used_memory")
		keys1, _ := b.s.rdb.DBSize(ctx).Result()
		fkey := b.s.prefix + "f:{" + author + "}"
		fmem, ferr := b.s.rdb.MemoryUsage(ctx, fkey, 0).Result()
		total := (mem1 - mem0) / float64(n)
		detail := fmt.Sprintf("used_memory +%.1f MB, %d keys added", (mem1-mem0)/1e6, keys1-keys0)
		b.add(figure{Key: "memory.edge", Scenario: "memory", Name: "Redis memory per follow edge, all keys a follow writes", N: n,
			Value: total, Unit: "bytes/edge", Detail: detail})
		if ferr == nil && fmem > 0 {
			b.add(figure{Key: "memory.f", Scenario: "memory", Name: "of which the followers set " + fkey, N: n,
				Value: float64(fmem) / float64(n), Unit: "bytes/edge",
				Detail: fmt.Sprintf("MEMORY USAGE %s SAMPLES 0 = %.1f MB; the rest is the per-JID g: index", fkey, float64(fmem)/1e6)})
		}
	}
}

// starling: one post through API → JetStream → fanout → send → Prosody →
// sink; from the 202 to the last stanza counted. Beside the celebrity post
// of bigP followers, the small authors' latency probes run when asked: they
// add 10 stanzas a probe to a fanout of a million.
func (b *bench) starlingProsody(g *teststack.Gateway, ns []int, record, probe bool) {
	for i, n := range ns {
		b.t.progress("starling → Prosody, one post to %d followers", n)
		var stop func()
		if i == len(ns)-1 {
			stop = b.profile("starling-prosody-" + strconv.Itoa(n))
		}
		pid := b.prosodyPID
		m := b.meter(g, b.s.sinkRecv).add("Prosody", func() time.Duration { return procCPU(pid) }).withMachine().start()
		var wall time.Duration
		if probe && n == b.sz.bigP {
			var lats []time.Duration
			wall, lats = b.fanoutWithProbes(g, n, b.s.sink, b.s.lat, time.Duration(n/5)*time.Millisecond)
			b.addLatency("latency.Prosody.during", "Prosody", fmt.Sprintf("during a %s fanout", nLabel(n)), lats)
		} else {
			wall = b.fanout(g, n, b.s.sink)
		}
		if stop != nil {
			stop()
		}
		cpu := m.since(wall, n, "stanza")
		b.durations["starling/"+strconv.Itoa(n)] = wall
		b.s.drained(within(n))
		if !record {
			continue
		}
		b.add(figure{Key: "starling.prosody." + strconv.Itoa(n), Scenario: "starling", Name: "POST → pipeline → Prosody → sink (default payload: minimal)", N: n,
			Value: float64(n) / wall.Seconds(), Unit: "stanzas/s",
			Detail: fmt.Sprintf("last stanza %s after the 202; CPU: %s", wall.Round(time.Millisecond), cpu)})
		b.add(figure{Key: "starling.prosody.secs." + strconv.Itoa(n), Scenario: "starling", Name: "202 → last stanza, through Prosody", N: n,
			Value: wall.Seconds(), Unit: "s"})
	}
}

// fanout posts as the celebrity with n followers and returns the time from
// the 202 to the n-th stanza at c.
func (b *bench) fanout(g *teststack.Gateway, n int, c counter) time.Duration {
	wait := c.expect(sinkDomain, n)
	_, t202 := b.s.post(celebrity(n), benchText)
	at, err := wait(within(n))
	if err != nil {
		b.t.Fatalf("fanout to %d: %v (log %s)", n, err, b.s.gatewayLog(g))
	}
	return at.Sub(t202)
}

// fanoutWithProbes is fanout with latency probes to lat spread over expect.
func (b *bench) fanoutWithProbes(g *teststack.Gateway, n int, big, lat counter, expect time.Duration) (time.Duration, []time.Duration) {
	for a := range 10 {
		b.s.ensureFollowers(smallAuthor(a), 10, func(k int) string { return smallFollower(a, k) })
	}
	wait := big.expect(sinkDomain, n)
	_, t202 := b.s.post(celebrity(n), benchText)
	done := make(chan struct{})
	var bigWall time.Duration
	var bigErr error
	go func() {
		defer close(done)
		at, err := wait(within(n))
		bigWall, bigErr = at.Sub(t202), err
	}()
	lats := b.probes(lat, b.sz.probes, expect/time.Duration(b.sz.probes+1), done)
	<-done
	if bigErr != nil {
		b.t.Fatalf("fanout to %d under probes: %v (log %s)", n, bigErr, b.s.gatewayLog(g))
	}
	return bigWall, lats
}

// gatewayAlone: the same pipeline, its component connection to the far end.
func (b *bench) gatewayAlone(g *teststack.Gateway, ep farEnd) {
	for i, n := range b.sz.alone {
		b.t.progress("gateway alone → bare endpoint, one post to %d followers", n)
		var stop func()
		if i == len(b.sz.alone)-1 {
			stop = b.profile("gateway-alone-" + strconv.Itoa(n))
		}
		var recvs []*recvProc
		if ep.recv != nil {
			recvs = append(recvs, ep.recv)
		}
		m := b.meter(g, recvs...).withMachine().start()
		wall := b.fanout(g, n, ep.c)
		cpu := m.since(wall, n, "stanza")
		if stop != nil {
			stop()
		}
		b.durations["alone/"+strconv.Itoa(n)] = wall
		b.s.drained(within(n))
		ns := strconv.Itoa(n)
		b.add(figure{Key: "alone.rate." + ns, Scenario: "gateway", Name: "POST → pipeline → bare endpoint", N: n,
			Value: float64(n) / wall.Seconds(), Unit: "stanzas/s",
			Detail: fmt.Sprintf("last stanza %s after the 202", wall.Round(time.Millisecond))})
		b.add(figure{Key: "alone.secs." + ns, Scenario: "gateway", Name: "202 → last stanza, bare endpoint", N: n,
			Value: wall.Seconds(), Unit: "s"})
		b.add(figure{Key: "alone.cpu." + ns, Scenario: "gateway", Name: "CPU per stanza of the " + m.names[0], N: n,
			Value: us(m.used(m.names[0]), n), Unit: "µs/stanza", Detail: cpu})
	}
}

// latencyAlone: small authors (10 followers each) post one at a time;
// each probe is timed from sending the POST to the 10th delivery counted.
func (b *bench) latencyAlone(path string, c counter) {
	for a := range 10 {
		b.s.ensureFollowers(smallAuthor(a), 10, func(k int) string { return smallFollower(a, k) })
	}
	b.addLatency("latency."+path+".alone", path, "alone", b.probes(c, b.sz.probes, 0, nil))
}

func (b *bench) probes(c counter, k int, interval time.Duration, stop <-chan struct{}) []time.Duration {
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
		wait := c.expect(latDomain, 10)
		start := time.Now()
		b.s.post(smallAuthor(i), "small post "+strconv.Itoa(i))
		at, err := wait(30 * time.Second)
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
	b.add(figure{Key: key + ".p50", Scenario: "latency", Name: "p50 POST → 10th follower, via " + path + ", " + when, N: 10,
		Value: ms(p(0.50)), Unit: "ms", Detail: detail})
	b.add(figure{Key: key + ".p99", Scenario: "latency", Name: "p99 POST → 10th follower, via " + path + ", " + when, N: 10,
		Value: ms(p(0.99)), Unit: "ms", Detail: detail})
}

// startup: the gateway started → /readyz 200 with the component connected
// (to Prosody), with the followers stored so far. In the headline view the
// time includes starting the process.
func (b *bench) startup(label string, followers int) {
	info := b.s.pros.Info()
	var ds []time.Duration
	for range b.sz.startups {
		g, d := b.s.startGateway(info.ComponentAddr)
		g.Stop()
		ds = append(ds, d)
	}
	slices.Sort(ds)
	b.add(figure{Key: "startup." + label, Scenario: "startup", Name: fmt.Sprintf("gateway start → ready and connected, %d follow edges stored", followers), N: followers,
		Value: float64(ds[len(ds)/2].Microseconds()) / 1000, Unit: "ms",
		Detail: fmt.Sprintf("median of %d; max %.1f ms", len(ds), float64(ds[len(ds)-1].Microseconds())/1000)})
	b.add(figure{Key: "startup." + label + ".max", Scenario: "startup", Name: fmt.Sprintf("slowest of %d starts, %d edges stored", len(ds), followers), N: followers,
		Value: float64(ds[len(ds)-1].Microseconds()) / 1000, Unit: "ms"})
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
	b.add(figure{Key: "startup.rosterbot", Scenario: "startup", Name: fmt.Sprintf("client bot: c2s connect → roster of %d items received (Prosody)", n), N: n,
		Value: float64(ds[len(ds)/2].Microseconds()) / 1000, Unit: "ms",
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
	sink, _ := b.sinkOn(info.ComponentAddr, info.Secret, sinkDomain)
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
		wait := sink.expect(sinkDomain, n)
		p0 := procCPU(pid)
		start := time.Now()
		var iqDone time.Duration
		var wg sync.WaitGroup
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), within(n))
			defer cancel()
			_, err := owner.iq(ctx, pubsubDomain, stanza.SetIQ, fmt.Sprintf(`<pubsub xmlns="http://jabber.org/protocol/pubsub"><publish node="%s"><item id="i1"><entry xmlns="http://www.w3.org/2005/Atom"><title>Bench post</title><content type="text">%s</content></entry></item></publish></pubsub>`, node, benchText), "")
			if err != nil {
				b.t.Errorf("pubsub publish: %v", err)
			}
			iqDone = time.Since(start)
		})
		at, err := wait(within(n))
		wg.Wait()
		if err != nil {
			b.t.Fatalf("pubsub: %v", err)
		}
		wall := at.Sub(start)
		pcpu := procCPU(pid) - p0
		b.add(figure{Key: "peer.pubsub." + strconv.Itoa(n), Scenario: "peer", Name: "Prosody PubSub: publish → last notification at the sink", N: n,
			Value: float64(n) / wall.Seconds(), Unit: "stanzas/s",
			Detail: fmt.Sprintf("last notification after %s; publish answered after %s; Prosody CPU %.0f%% of a core", wall.Round(time.Millisecond), iqDone.Round(time.Millisecond), 100*pcpu.Seconds()/wall.Seconds())})
		b.add(figure{Key: "peer.pubsub.secs." + strconv.Itoa(n), Scenario: "peer", Name: "Prosody PubSub: publish → last notification", N: n,
			Value: wall.Seconds(), Unit: "s"})
	}
}

// binPath is a binary the bench built.
func (b *bench) binPath(name string) string { return filepath.Join(b.bin, name) }
