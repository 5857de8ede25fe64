// Command bench is Starling's benchmark suite. It starts its own real
// servers (redis-server, Prosody, ejabberd, NATS with JetStream), loads
// Redis with followers whose JIDs live on a "sink" component domain, runs
// every scenario, prints a table, and writes JSON and docs/BENCHMARKS.md.
//
// The headline figures come from the system as it is deployed: the built
// gateway and api binaries as separate processes, a nats-server process,
// and a receiver process (bench/receiver) that parses what arrives as XML.
// The same scenarios run with the gateway and the API in the bench process
// (the in-process view, -inprocess) for a second set of figures.
//
//	go run ./bench -quick        # a few minutes, small audiences
//	go run ./bench               # the full suite, up to 1M followers
//	go run ./bench -only gateway -inprocess -cpuprofile /tmp/cpu.pprof
//
// See bench/README.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"starling.dev/starling/internal/testenv"
)

var scenarioNames = []string{"receiver", "raw", "memory", "starling", "gateway", "latency", "startup", "peer", "ingest"}

// secondaryScenarios are those the in-process view repeats in a default
// run: where running inside one process changes what is measured.
var secondaryScenarios = map[string]bool{"receiver": true, "starling": true, "gateway": true, "latency": true, "ingest": true}

func main() {
	quick := flag.Bool("quick", false, "small audiences (10k, 100k)")
	only := flag.String("only", "", "comma-separated scenarios to run: "+strings.Join(scenarioNames, ","))
	inprocess := flag.Bool("inprocess", false, "only the in-process view: the gateway and the API in the bench process, byte-counting receivers")
	secondary := flag.Bool("secondary", true, "after the headline (process) view, run the in-process view of "+strings.Join(sortedKeys(secondaryScenarios), ",")+" too")
	jsonOut := flag.String("json", "", "where to write the JSON results (default bench/results/<date>-<mode>.json)")
	mdOut := flag.String("md", "", "where to write the Markdown report (default docs/BENCHMARKS.md when every scenario runs in full mode; \"-\" for none)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole bench process to this file (turns the per-scenario profiles off)")
	profDir := flag.String("profiles", "", "folder for the CPU profiles of the in-process view's largest runs (default bench/results/profiles in full mode, none in -quick)")
	verbose := flag.Bool("v", false, "log what the server helpers log")
	flag.Parse()

	began := time.Now()
	mode := "full"
	sz := fullSizes
	if *quick {
		mode, sz = "quick", quickSizes
	}
	sel := map[string]bool{}
	for name := range strings.SplitSeq(*only, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if !contains(scenarioNames, name) {
			fmt.Fprintf(os.Stderr, "bench: unknown scenario %q; known: %s\n", name, strings.Join(scenarioNames, ","))
			os.Exit(2)
		}
		sel[name] = true
	}
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if *jsonOut == "" {
		*jsonOut = filepath.Join(root, "bench", "results", began.UTC().Format("2006-01-02T150405Z")+"-"+mode+".json")
	}
	if *mdOut == "" {
		// A report is the full suite's: a quick or partial run writes none
		// unless asked to.
		*mdOut = "-"
		if len(sel) == 0 && !*quick && !*inprocess && *secondary {
			*mdOut = filepath.Join(root, "docs", "BENCHMARKS.md")
		}
	}
	if *profDir == "" && !*quick && *cpuprofile == "" {
		*profDir = filepath.Join(root, "bench", "results", "profiles")
	}
	if *cpuprofile != "" {
		*profDir = ""
	}

	t := newRunner(*verbose)
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		})
	}
	base := "go run ./bench"
	if *quick {
		base += " -quick"
	}
	res := &results{Date: began.UTC().Format(time.RFC3339), Mode: mode, Command: strings.Join(append([]string{base}, flagArgs()...), " ")}
	b := &bench{t: t, sz: sz, res: res, only: sel, profDir: *profDir, base: base, durations: map[string]time.Duration{}}

	views := []view{processView}
	if *inprocess {
		views = []view{inprocessView}
	} else if *secondary {
		views = append(views, inprocessView)
	}
	for i, v := range views {
		b.v, b.sz, b.scens, b.durations = v, sz, nil, map[string]time.Duration{}
		if i > 0 {
			// The in-process view after the headline one: fewer scenarios
			// and no million through Prosody.
			b.sz, b.scens = sz.secondary(), secondaryScenarios
		}
		if !b.anyWanted() {
			continue
		}
		t.progress("— the %s view —", v.name)
		mark := t.Mark()
		b.run()
		if i == 0 {
			res.Machine = machine(b)
		}
		t.Unwind(mark)
		b.s = nil
	}
	res.Elapsed = time.Since(began).Round(time.Millisecond).String()
	res.Targets = targets(b, views[0], sz)
	res.printTable(os.Stdout)
	if err := res.writeJSON(*jsonOut); err != nil {
		t.Errorf("json: %v", err)
	} else {
		fmt.Fprintf(os.Stderr, "bench: wrote %s\n", *jsonOut)
	}
	if *mdOut != "-" {
		if err := res.writeMarkdown(*mdOut, b, views[0], sz); err != nil {
			t.Errorf("markdown: %v", err)
		} else {
			fmt.Fprintf(os.Stderr, "bench: wrote %s\n", *mdOut)
		}
	}
	t.Stop()
	fmt.Fprintf(os.Stderr, "bench: done in %s\n", time.Since(began).Round(time.Millisecond))
	if t.Failed() {
		os.Exit(1)
	}
}

func (b *bench) anyWanted() bool {
	for _, s := range scenarioNames {
		if b.want(s) {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for _, s := range scenarioNames {
		if m[s] {
			out = append(out, s)
		}
	}
	return out
}

// run runs the selected scenarios of the current view on one stack, in an
// order that loads the followers once and moves the gateway's connection
// from Prosody to the bare endpoint once.
func (b *bench) run() {
	if !b.v.inproc && b.bin == "" {
		b.t.progress("building bench/receiver and bench/minimalapi")
		b.bin = filepath.Join(b.t.TempDir(), "bin")
		testenv.GoBuild(b.t, b.bin, "starling.dev/starling/bench/receiver", "starling.dev/starling/bench/minimalapi")
	}
	if b.want("receiver") {
		b.t.progress("receiver self-check")
		b.receiver()
	}
	needStack := false
	for _, s := range scenarioNames[1:] {
		needStack = needStack || b.want(s)
	}
	if !needStack {
		return
	}
	if b.v.inproc {
		b.t.progress("starting redis-server, Prosody (+ sink and lat components), NATS and the API in this process")
	} else {
		b.t.progress("starting redis-server, Prosody, nats-server, the api process and the receivers for sink and lat")
	}
	b.s = b.startStack()
	b.prosodyPID = findPID(filepath.Dir(b.s.pros.DataDir()), "prosody")
	if !b.v.inproc {
		b.apiPID = findPID(b.s.dir, filepath.Join("bin", "api"))
		b.natsPID = findPID(b.s.dir, "nats-server")
	}
	info := b.s.pros.Info()

	if b.want("raw") {
		b.rawProsody()
		b.rawEjabberd()
	}
	if b.want("startup") {
		b.t.progress("startup with no followers stored")
		b.startup("empty", 0)
	}
	var ns []int
	if b.want("starling") || b.want("memory") {
		ns = append(ns, b.sz.starling...)
	}
	if b.want("gateway") {
		ns = append(ns, b.sz.alone...)
	}
	if b.want("latency") || b.want("startup") || b.want("memory") {
		ns = append(ns, b.sz.big, b.sz.bigP)
	}
	if len(ns) > 0 {
		b.loadAudiences(ns, b.want("memory"))
	}

	if b.want("starling") || b.want("latency") {
		g, _ := b.s.startGateway(info.ComponentAddr)
		if b.want("latency") {
			b.t.progress("latency via Prosody, alone")
			b.latencyAlone("Prosody", b.s.lat)
		}
		ns := b.sz.starling
		if !b.want("starling") {
			ns = []int{b.sz.bigP}
		}
		b.starlingProsody(g, ns, b.want("starling"), b.want("latency"))
		g.Stop()
	}
	if b.want("gateway") || b.want("latency") {
		mark := b.t.Mark()
		ep := b.startFarEnd(info.ComponentDomain, info.Secret)
		g, _ := b.s.startGateway(ep.addr)
		if b.want("gateway") {
			b.gatewayAlone(g, ep)
		}
		if b.want("latency") {
			b.t.progress("latency via the bare endpoint, alone and during a %d fanout", b.sz.big)
			b.latencyAlone("bare endpoint", ep.c)
			expect := b.durations["alone/"+strconv.Itoa(b.sz.big)]
			if expect == 0 {
				expect = time.Duration(b.sz.big/200) * time.Millisecond // ~200k/s
			}
			wall, lats := b.fanoutWithProbes(g, b.sz.big, ep.c, ep.c, expect)
			b.s.drained(within(b.sz.big))
			b.addLatency("latency.bare endpoint.during", "bare endpoint", fmt.Sprintf("during a %s fanout (%s)", nLabel(b.sz.big), wall.Round(time.Millisecond)), lats)
		}
		g.Stop()
		b.t.Unwind(mark)
	}
	if b.want("startup") {
		total := 0
		for _, n := range b.s.followers {
			total += n
		}
		b.t.progress("startup with %d follow edges stored", total)
		b.startup("loaded", total)
		b.t.progress("startup baseline: client bot with a %d-item roster", b.sz.roster)
		b.rosterBot()
	}
	if b.want("peer") {
		b.peer()
	}
	if b.want("ingest") {
		b.ingest()
	}
}

// profile starts a CPU profile of one scenario when profiles are on, and
// returns the function that ends it. Only the in-process view has the
// gateway and the API in the process profiled.
func (b *bench) profile(name string) func() {
	if b.profDir == "" || !b.v.inproc {
		return nil
	}
	if err := os.MkdirAll(b.profDir, 0o755); err != nil {
		b.t.Errorf("profile: %v", err)
		return nil
	}
	path := filepath.Join(b.profDir, name+".pprof")
	f, err := os.Create(path)
	if err != nil {
		b.t.Errorf("profile: %v", err)
		return nil
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.t.Errorf("profile: %v", err)
		f.Close()
		return nil
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
		b.res.Profiles = append(b.res.Profiles, profileSummary{Name: name, Path: path, Top: pprofTop(path)})
	}
}

// pprofTop is `go tool pprof -top` of a profile, the first lines.
func pprofTop(path string) string {
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=18", path).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(go tool pprof failed: %v)", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "flat") {
			return strings.Join(lines[max(0, i-2):], "\n")
		}
	}
	return string(out)
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module starling.dev/starling") {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("run bench from inside the starling module (no go.mod above %s)", dir)
		}
	}
}

func flagArgs() []string {
	var out []string
	flag.Visit(func(f *flag.Flag) {
		if f.Name != "quick" {
			out = append(out, "-"+f.Name+"="+f.Value.String())
		}
	})
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// findPID finds a child server by its command line, which holds the
// runner's temporary folder.
func findPID(root, name string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		s := string(cmd)
		if strings.Contains(s, root) && strings.Contains(s, name) {
			return pid
		}
	}
	return 0
}

// findPIDs is findPID for every match.
func findPIDs(root, name string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmd), root) && strings.Contains(string(cmd), name) {
			out = append(out, pid)
		}
	}
	return out
}

// procCPU is the CPU time a process has used (user + system).
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * (time.Second / 100) // USER_HZ is 100 on Linux
}
