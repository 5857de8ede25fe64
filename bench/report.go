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
	Name     string  `json:"name"`
	N        int     `json:"n,omitempty"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Detail   string  `json:"detail,omitempty"`
	Command  string  `json:"command"`
}

// target is one goal of issue 4, measured.
type target struct {
	Name     string `json:"name"`
	Measured string `json:"measured"`
	Target   string `json:"target"`
	Status   string `json:"status"` // met, missed, not run
	Note     string `json:"note,omitempty"`
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
	fmt.Fprintln(tw, "scenario\tfigure\tN\tvalue\tunit\tdetail")
	for _, f := range r.Figures {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Scenario, f.Name, nLabel(f.N), format(f.Value, f.Unit), f.Unit, f.Detail)
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

// targets checks the goals of issue 4 against the figures.
func targets(b *bench) []target {
	r := b.res
	var out []target
	largest := func(ns []int) int {
		m := 0
		for _, n := range ns {
			m = max(m, n)
		}
		return m
	}
	status := func(ok bool) string {
		if ok {
			return "met"
		}
		return "missed"
	}
	notRun := func(name, tgt, why string) {
		out = append(out, target{Name: name, Measured: "—", Target: tgt, Status: "not run", Note: why})
	}

	// Gateway alone ≥ 250k stanzas/s.
	n := largest(b.sz.alone)
	if f, ok := r.get("alone.rate." + strconv.Itoa(n)); ok {
		cpu, _ := r.get("alone.cpu." + strconv.Itoa(n))
		out = append(out, target{Name: "gateway alone, N=" + nLabel(n), Measured: format(f.Value, "") + " stanzas/s", Target: "≥ 250,000 stanzas/s",
			Status: status(f.Value >= 250_000), Note: fmt.Sprintf("%s µs CPU/stanza in the bench process (%s)", format(cpu.Value, ""), cpu.Detail)})
	} else {
		notRun("gateway alone", "≥ 250,000 stanzas/s", "scenario not selected")
	}
	// Starling ≥ 0.9 × raw through Prosody, at the largest N with both.
	done := false
	for i := len(b.sz.starling) - 1; i >= 0 && !done; i-- {
		n := b.sz.starling[i]
		s, ok1 := r.get("starling.prosody." + strconv.Itoa(n))
		raw, ok2 := r.get("raw.prosody." + strconv.Itoa(n))
		if ok1 && ok2 {
			ratio := s.Value / raw.Value
			out = append(out, target{Name: "starling vs raw through Prosody, N=" + nLabel(n), Measured: fmt.Sprintf("%.2f× (%s vs %s stanzas/s)", ratio, format(s.Value, ""), format(raw.Value, "")),
				Target: "≥ 0.9×", Status: status(ratio >= 0.9), Note: "starling: " + s.Detail + "; raw: " + raw.Detail})
			done = true
		}
	}
	if !done {
		notRun("starling vs raw through Prosody", "≥ 0.9×", "needs the raw and starling scenarios")
	}
	// 1M into the bare endpoint < 3.5 s.
	if f, ok := r.get("alone.secs.1000000"); ok {
		out = append(out, target{Name: "1M followers into the bare endpoint", Measured: fmt.Sprintf("%.2f s after the 202", f.Value), Target: "< 3.5 s", Status: status(f.Value < 3.5)})
	} else {
		notRun("1M followers into the bare endpoint", "< 3.5 s", "full mode only (-quick stops at 100k)")
	}
	// p99 small-post latency during a 1M fanout < 50 ms.
	for _, path := range []string{"Prosody", "bare endpoint"} {
		key := "latency." + path + ".during.p99"
		big := b.sz.big
		if path == "Prosody" {
			big = b.sz.bigP
		}
		name := "p99 small-post latency during a " + nLabel(big) + " fanout, via " + path
		if f, ok := r.get(key); ok {
			st := status(f.Value < 50)
			if big != 1_000_000 {
				st += " (at " + nLabel(big) + ", not 1M)"
			}
			out = append(out, target{Name: name, Measured: fmt.Sprintf("%.1f ms", f.Value), Target: "< 50 ms", Status: st, Note: f.Detail})
		} else {
			notRun(name, "< 50 ms", "scenario not selected")
		}
	}
	// Startup ≤ 1 s regardless of follower count.
	e, ok1 := r.get("startup.empty.max")
	l, ok2 := r.get("startup.loaded.max")
	if ok1 && ok2 {
		out = append(out, target{Name: "gateway startup, any follower count", Measured: fmt.Sprintf("%.0f ms empty, %.0f ms with %s edges (slowest)", e.Value, l.Value, nLabel(l.N)),
			Target: "≤ 1 s", Status: status(e.Value <= 1000 && l.Value <= 1000)})
	} else {
		notRun("gateway startup", "≤ 1 s", "scenario not selected")
	}
	// Starling ≥ 1 × Prosody PubSub for the same N.
	done = false
	for i := len(b.sz.peer) - 1; i >= 0 && !done; i-- {
		n := b.sz.peer[i]
		p, ok1 := r.get("peer.pubsub." + strconv.Itoa(n))
		s, ok2 := r.get("starling.prosody." + strconv.Itoa(n))
		if ok1 && ok2 {
			ratio := s.Value / p.Value
			out = append(out, target{Name: "starling vs Prosody PubSub, N=" + nLabel(n), Measured: fmt.Sprintf("%.2f× (%s vs %s stanzas/s)", ratio, format(s.Value, ""), format(p.Value, "")),
				Target: "≥ 1×", Status: status(ratio >= 1), Note: "PubSub: " + p.Detail})
			done = true
		}
	}
	if !done {
		notRun("starling vs Prosody PubSub", "≥ 1×", "needs the peer and starling scenarios")
	}
	// Ingest ≥ 0.5 × raw JetStream.
	a, ok1 := r.get("ingest.api")
	j, ok2 := r.get("ingest.raw")
	if ok1 && ok2 {
		ratio := a.Value / j.Value
		out = append(out, target{Name: "ingest vs raw JetStream publish", Measured: fmt.Sprintf("%.2f× (%s posts/s vs %s msgs/s)", ratio, format(a.Value, ""), format(j.Value, "")),
			Target: "≥ 0.5×", Status: status(ratio >= 0.5)})
	} else {
		notRun("ingest vs raw JetStream publish", "≥ 0.5×", "scenario not selected")
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
		{"NATS server (in-process module)", "v" + server.VERSION},
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
		if strings.HasPrefix(line, "Prosody ") {
			return strings.TrimPrefix(line, "Prosody ")
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
