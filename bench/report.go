package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// figure is one measured number and the command that produced it.
type figure struct {
	Key      string  `json:"key"`
	Scenario string  `json:"scenario"`
	View     string  `json:"view"` // process (the headline) or in-process
	Name     string  `json:"name"`
	N        int     `json:"n,omitempty"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Detail   string  `json:"detail,omitempty"`
	Command  string  `json:"command"`
}

// target is one goal of issue 10, measured.
type target struct {
	Name     string `json:"name"`
	Measured string `json:"measured"`
	Target   string `json:"target"`
	Status   string `json:"status"` // met, missed, not run
	Note     string `json:"note,omitempty"`
	Command  string `json:"command,omitempty"`
}

type profileSummary struct {
	Name string `json:"name"`
	Path string `json:"path"`
	Top  string `json:"top"`
}

type kv struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type results struct {
	Date     string           `json:"date"`
	Mode     string           `json:"mode"`
	Command  string           `json:"command"`
	Elapsed  string           `json:"elapsed"`
	Machine  []kv             `json:"machine"`
	Figures  []figure         `json:"figures"`
	Targets  []target         `json:"targets"`
	Profiles []profileSummary `json:"profiles,omitempty"`
}

func (r *results) add(f figure) {
	r.Figures = append(r.Figures, f)
	n := ""
	if f.N > 0 {
		n = fmt.Sprintf(" (N=%d)", f.N)
	}
	fmt.Fprintf(os.Stderr, "bench:   %s%s: %s %s  %s\n", f.Name, n, format(f.Value, f.Unit), f.Unit, f.Detail)
}

func (r *results) get(key string) (figure, bool) {
	for _, f := range r.Figures {
		if f.Key == key {
			return f, true
		}
	}
	return figure{}, false
}

func format(v float64, unit string) string {
	switch {
	case v >= 1000:
		return thousands(int64(v + 0.5))
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func nLabel(n int) string {
	switch {
	case n == 0:
		return ""
	case n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

func (r *results) printTable(w io.Writer) {
	fmt.Fprintf(w, "\nStarling benchmarks, %s mode, %s (%s)\n\n", r.Mode, r.Date, r.Elapsed)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "view\tscenario\tfigure\tN\tvalue\tunit\tdetail")
	for _, f := range r.Figures {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.View, f.Scenario, f.Name, nLabel(f.N), format(f.Value, f.Unit), f.Unit, f.Detail)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tmeasured\ttarget\tstatus")
	for _, t := range r.Targets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Measured, t.Target, t.Status)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

func (r *results) writeJSON(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// targets checks the goals of issue 10 against the figures of the headline
// view v (the process view, unless only the in-process one ran).
func targets(b *bench, v view, sz sizes) []target {
	r := b.res
	get := func(key string) (figure, bool) { return r.get(v.prefix + key) }
	var out []target
	status := func(ok bool) string {
		if ok {
			return "met"
		}
		return "missed"
	}
	notRun := func(name, tgt, why string) {
		out = append(out, target{Name: name, Measured: "—", Target: tgt, Status: "not run", Note: why})
	}
	add := func(t target, f figure) {
		t.Command = f.Command
		out = append(out, t)
	}

	// Starling ≥ 0.9 × a raw component writing minimal chat messages,
	// through Prosody, at the largest N with both.
	done := false
	for i := len(sz.starling) - 1; i >= 0 && !done; i-- {
		n := sz.starling[i]
		s, ok1 := get("starling.prosody." + strconv.Itoa(n))
		raw, ok2 := get("raw.prosody.minimal." + strconv.Itoa(n))
		if ok1 && ok2 {
			ratio := s.Value / raw.Value
			add(target{Name: "Starling (default payload) vs a raw component writing minimal chat messages, through Prosody, N=" + nLabel(n),
				Measured: fmt.Sprintf("%.2f× (%s vs %s stanzas/s)", ratio, format(s.Value, ""), format(raw.Value, "")),
				Target:   "≥ 0.9×", Status: status(ratio >= 0.9), Note: "starling: " + s.Detail + "; raw: " + raw.Detail}, s)
			out[len(out)-1].Command += "; " + raw.Command
			done = true
		}
	}
	if !done {
		notRun("Starling vs raw minimal through Prosody", "≥ 0.9×", "needs the raw and starling scenarios")
	}
	// Starling ≥ 1 × Prosody PubSub for the same N.
	done = false
	for i := len(sz.peer) - 1; i >= 0 && !done; i-- {
		n := sz.peer[i]
		p, ok1 := get("peer.pubsub." + strconv.Itoa(n))
		s, ok2 := get("starling.prosody." + strconv.Itoa(n))
		if ok1 && ok2 {
			ratio := s.Value / p.Value
			add(target{Name: "Starling vs Prosody's own PubSub, N=" + nLabel(n), Measured: fmt.Sprintf("%.2f× (%s vs %s stanzas/s)", ratio, format(s.Value, ""), format(p.Value, "")),
				Target: "≥ 1×", Status: status(ratio >= 1), Note: "PubSub: " + p.Detail}, s)
			out[len(out)-1].Command += "; " + p.Command
			done = true
		}
	}
	if !done {
		notRun("Starling vs Prosody PubSub", "≥ 1×", "needs the peer and starling scenarios")
	}
	// Gateway alone ≥ 250k stanzas/s.
	n := slices.Max(append([]int{0}, sz.alone...))
	if f, ok := get("alone.rate." + strconv.Itoa(n)); ok {
		cpu, _ := get("alone.cpu." + strconv.Itoa(n))
		add(target{Name: "gateway alone, N=" + nLabel(n), Measured: format(f.Value, "") + " stanzas/s", Target: "≥ 250,000 stanzas/s",
			Status: status(f.Value >= 250_000), Note: cpu.Detail}, f)
	} else {
		notRun("gateway alone", "≥ 250,000 stanzas/s", "scenario not selected")
	}
	// 1M into the bare endpoint < 3.5 s.
	if f, ok := get("alone.secs.1000000"); ok {
		add(target{Name: "gateway alone, 1M followers", Measured: fmt.Sprintf("%.2f s after the 202", f.Value), Target: "< 3.5 s", Status: status(f.Value < 3.5)}, f)
	} else {
		notRun("gateway alone, 1M followers", "< 3.5 s", "full mode only (-quick stops at 100k)")
	}
	// p99 small-post latency during a 1M fanout through Prosody < 25 ms.
	name := "p99 POST → client of a small author during a " + nLabel(sz.bigP) + " fanout, through Prosody"
	if f, ok := get("latency.Prosody.during.p99"); ok {
		st := status(f.Value < 25)
		if sz.bigP != 1_000_000 {
			st += " (at " + nLabel(sz.bigP) + ", not 1M)"
		}
		add(target{Name: name, Measured: fmt.Sprintf("%.1f ms", f.Value), Target: "< 25 ms", Status: st, Note: f.Detail}, f)
	} else {
		notRun(name, "< 25 ms", "scenario not selected")
	}
	// Ingest ≥ 10k posts/s, and ≥ 0.7 × the minimal handler.
	a, ok1 := get("ingest.api")
	if ok1 {
		add(target{Name: "ingest: POST /v1/statuses with durable acks", Measured: format(a.Value, "") + " posts/s", Target: "≥ 10,000 posts/s",
			Status: status(a.Value >= 10_000), Note: a.Detail}, a)
	} else {
		notRun("ingest: POST /v1/statuses", "≥ 10,000 posts/s", "scenario not selected")
	}
	if m, ok2 := get("ingest.minimal"); ok1 && ok2 {
		ratio := a.Value / m.Value
		add(target{Name: "ingest vs a minimal Go handler doing the same durable publish", Measured: fmt.Sprintf("%.2f× (%s vs %s posts/s)", ratio, format(a.Value, ""), format(m.Value, "")),
			Target: "≥ 0.7×", Status: status(ratio >= 0.7), Note: "minimal: " + m.Detail}, m)
	} else {
		notRun("ingest vs a minimal Go handler", "≥ 0.7×", "needs the ingest scenario in the process view")
	}
	// Startup ≤ 1 s regardless of follower count (issue 4).
	e, ok1 := get("startup.empty.max")
	l, ok2 := get("startup.loaded.max")
	if ok1 && ok2 {
		add(target{Name: "gateway startup, any follower count", Measured: fmt.Sprintf("%.0f ms empty, %.0f ms with %s edges (slowest)", e.Value, l.Value, nLabel(l.N)),
			Target: "≤ 1 s", Status: status(e.Value <= 1000 && l.Value <= 1000)}, l)
	} else {
		notRun("gateway startup", "≤ 1 s", "scenario not selected")
	}
	if v.inproc {
		for i := range out {
			out[i].Name += " (in-process view)"
		}
	}
	return out
}

// machine describes where the figures were measured.
func machine(b *bench) []kv {
	out := []kv{
		{"CPU", cpuModel()},
		{"cores (nproc)", strconv.Itoa(runtime.NumCPU())},
		{"memory", memTotal()},
		{"kernel", readTrim("/proc/sys/kernel/osrelease")},
		{"Debian", readTrim("/etc/debian_version")},
		{"Go", runtime.Version()},
		{"Prosody", prosodyVersion()},
		{"ejabberd", command("dpkg-query", "-W", "-f=${Version}", "ejabberd")},
		{"Erlang/OTP", command("dpkg-query", "-W", "-f=${Version}", "erlang-base")},
		{"nats-server (built from the module's requirement)", "v" + server.VERSION},
		{"nats.go", nats.Version},
	}
	if b.s != nil {
		v, err := b.s.rdb.Info(context.Background(), "server").Result()
		if err == nil {
			for line := range strings.SplitSeq(v, "\n") {
				if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
					out = append(out, kv{"Redis", rest})
				}
			}
		}
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "mellium.im/xmpp" || d.Path == "github.com/redis/go-redis/v9" {
				out = append(out, kv{d.Path, d.Version})
			}
		}
	}
	if rev := command("git", "rev-parse", "--short", "HEAD"); rev != "" {
		if dirty := command("git", "status", "--porcelain", "--untracked-files=no"); dirty != "" {
			rev += " + uncommitted changes"
		}
		out = append(out, kv{"starling commit", rev})
	}
	return out
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func cpuModel() string {
	for line := range strings.SplitSeq(readTrim("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func memTotal() string {
	for line := range strings.SplitSeq(readTrim("/proc/meminfo"), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return fmt.Sprintf("%.1f GiB", kb/(1<<20))
		}
	}
	return "?"
}

func prosodyVersion() string {
	out := command("prosodyctl", "about")
	for line := range strings.SplitSeq(out, "\n") {
		// "Prosody 0.12.3"; a warning may come first ("Prosody was unable
		// to find lua-unbound").
		if v, ok := strings.CutPrefix(line, "Prosody "); ok && v != "" && v[0] >= '0' && v[0] <= '9' {
			return v
		}
	}
	return "?"
}

func command(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
