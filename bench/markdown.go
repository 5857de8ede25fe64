package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// scenarioDocs says how each scenario measures, for the report: how in the
// headline (process) view, and what differs in the in-process view.
var scenarioDocs = []struct{ name, title, how, inproc string }{
	{"receiver", "Receiver self-check",
		"Every figure below ends at `bench/receiver`, a process of its own that parses the stream with a strict XML tokenizer (well-formedness, " +
			"references, UTF-8, matching end tags; no comments, PIs or DTDs, as RFC 6120 forbids: a malformed byte fails the run), counts `<message/>` " +
			"stanzas by recipient domain and answers every IQ get with a result. Its capacity, in stanzas per CPU-second of its process, parsing in memory " +
			"and reading a raw writer over loopback TCP, is far above every rate it measures, so the figures are the servers' and Starling's. " +
			"For comparison, the same receiver on `encoding/xml` (`receiver -parser encoding/xml`), which would itself cap the gateway-alone figure.",
		"The old view's receivers are in the bench process and count the bytes `<message` with `bytes.Count` over 256 KiB reads; nothing is parsed."},
	{"raw", "raw: the XMPP server's routing limit",
		"A minimal component in the bench process (mellium's handshake, then raw bytes) logs in as `microblog.localhost` and writes " +
			"`xmpp.NewDelivery(...).AppendTo` output — byte for byte the stanzas Starling sends, with the `minimal` payload (body and XEP-0359 origin-id, " +
			"Starling's default) and with `atom` — to `f<i>@sink.localhost`, 500 per batch, each batch followed by an XEP-0199 ping to the server, at most 8 " +
			"batches unanswered (ejabberd disconnects a component with more than 10,000 queued stanzas: `max_fsm_queue`). The server routes them to the " +
			"receiver process logged in as `sink.localhost`. Time: first byte written → last stanza parsed by the receiver.",
		"The sink is testenv's byte-counting component in the bench process."},
	{"memory", "Redis: loading and memory per follow edge",
		"Followers are loaded with the store's own `RedisStore.AddFollowers` (what the admin import uses: `f:{author}` plus each JID's `g:` index), " +
			"1,000 JIDs per pipeline on 4 connections. Memory is Redis `INFO memory` `used_memory` before and after loading the largest audience first " +
			"(so every key it writes is new), divided by the edges; `MEMORY USAGE f:{author} SAMPLES 0` splits out the followers set.", ""},
	{"starling", "starling: one post through the real pipeline into Prosody",
		"`POST /v1/statuses` on the `api` binary → JetStream `POSTS` (a `nats-server` process) → the `gateway` binary's fanout stage → `DELIVERIES` → " +
			"its send stage → its component connection (production defaults, `STARLING_PAYLOAD` unset: minimal) → Prosody → the receiver process on " +
			"`sink.localhost`. Time: the 202 → the last stanza parsed. CPU of each process from `/proc/<pid>/stat` (Redis: `INFO cpu`).",
		"The gateway and the API run in the bench process (`app.RunGateway`, `app.RunAPI`, configured from the same `STARLING_*` variables), with " +
			"NATS in-process too and testenv's byte-counting sink."},
	{"gateway", "gateway alone: Starling's own ceiling",
		"The same processes, but the gateway's component connection goes to the receiver process in endpoint mode: a bare XEP-0114 accept endpoint that " +
			"checks the handshake, parses and counts, and answers every IQ get (the delivery pings) with a result. Time: the 202 → the last stanza parsed. " +
			"CPU per stanza of each process: gateway, api, nats-server, receiver, redis-server.",
		"Everything but Redis in the bench process, with the byte-counting endpoint; its CPU figure is the whole bench process."},
	{"latency", "latency: small posts, alone and beside a celebrity",
		"Ten authors with 10 followers each on `lat.localhost` post one at a time; each post is timed from sending the POST to the 10th delivery parsed " +
			"by the receiver for `lat.localhost` (through Prosody a second receiver process; through the bare endpoint the same one, told apart by domain). " +
			"Then the same while one celebrity post fans out to N followers on `sink.localhost`, the small posts spread over the big fanout's expected duration.",
		"In-process gateway and API; byte-counting receivers."},
	{"startup", "startup: no roster to load",
		"Gateway: the `gateway` process started → `/readyz` 200 with `xmpp_connected: true` (Prosody accepted the component), with no followers stored " +
			"and again with every audience stored. Baseline, the design Starling replaces (a client bot whose roster holds every follower): a Prosody " +
			"account whose roster (written directly as `data/localhost/roster/bot.dat`, Prosody's internal storage) holds 40,000 contacts; time from TCP " +
			"connect through SASL and bind to the roster result parsed (mellium, no presence sent).",
		"`app.RunGateway` called in the bench process → ready."},
	{"peer", "peer: Prosody's own PubSub",
		"`Component \"pubsub.localhost\" \"pubsub\"` (mod_pubsub) on a second Prosody. Prosody 0.12 re-serializes the whole node on every subscribe, so " +
			"the nodes with their N subscribers (`f<i>@sink.localhost`) are written into its storage and Prosody is restarted to load them. An admin " +
			"publishes one item; the time runs to the last notification parsed by the receiver process on `sink.localhost`.",
		"The sink is testenv's byte-counting component."},
	{"ingest", "ingest: accepting posts",
		"A load generator in the bench process (32 HTTP clients on keep-alive connections, a warm-up of a tenth of the time, then a fixed time) posts " +
			"`{\"text\": ...}` to the `api` process's `POST /v1/statuses` (202 only after JetStream's ack; rate limits off), then, the same way, to " +
			"`bench/minimalapi`, a separate process on the same nats-server: one net/http handler that decodes the JSON, makes a ULID, publishes the post " +
			"with `Nats-Msg-Id` to a stream configured like `POSTS` and answers 202 after the ack — no authentication, no Redis. No gateway runs meanwhile.",
		"The API in the bench process with the same load generator; beside it `PublishAsync` of a post's JSON with a `Nats-Msg-Id` to a stream " +
			"configured like `POSTS`, at most 4,096 pending: no HTTP, no wait per post (the old yardstick, which no HTTP service could reach)."},
}

func (r *results) writeMarkdown(path string, b *bench, v view, sz sizes) error {
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format, args...) }
	p("# Starling benchmarks\n\n")
	p("Generated by `%s` on %s (%s mode, %s). Do not edit by hand: run `make bench` (full) and commit the result. ", r.Command, r.Date, r.Mode, r.Elapsed)
	p("Every figure below names the command that reproduces it; `bench/README.md` describes the tool. The JSON of this run is in `bench/results/`.\n\n")
	p("**Headline figures** come from the system as it is deployed: the built `gateway` and `api` binaries as separate processes, a `nats-server` " +
		"process, redis-server, the XMPP server, and a receiver process (`bench/receiver`) that parses what arrives as XML. **In-process figures** " +
		"(the gateway and the API inside the bench process, byte-counting receivers: `go run ./bench -inprocess`) follow each scenario's headline rows " +
		"as a secondary view. All processes share this one machine's cores: read ratios more than absolutes.\n\n")

	p("## Machine\n\n| | |\n|---|---|\n")
	for _, m := range r.Machine {
		p("| %s | %s |\n", m.Key, m.Value)
	}

	p("\n## Targets (issue 10), %s view\n\n| target | measured | target | status | command |\n|---|---|---|---|---|\n", v.name)
	for _, t := range r.Targets {
		cmd := ""
		if t.Command != "" {
			cmd = "`" + strings.ReplaceAll(t.Command, "; ", "`; `") + "`"
		}
		p("| %s | %s | %s | **%s** | %s |\n", t.Name, t.Measured, t.Target, t.Status, cmd)
	}
	if notes := limitNotes(b, sz); len(notes) > 0 {
		p("\n### What limits the missed targets\n\n")
		for _, n := range notes {
			p("- %s\n", n)
		}
	}

	p("\n## Results\n")
	for _, sd := range scenarioDocs {
		var head, second []figure
		for _, f := range r.Figures {
			if f.Scenario != sd.name {
				continue
			}
			if f.View == inprocessView.name && v.name != inprocessView.name {
				second = append(second, f)
			} else {
				head = append(head, f)
			}
		}
		if len(head)+len(second) == 0 {
			continue
		}
		how := sd.how
		if v.inproc && sd.inproc != "" {
			how += " In this run: " + sd.inproc
		}
		p("\n### %s\n\n%s\n", sd.title, how)
		table(&w, head)
		if len(second) > 0 {
			p("\nIn-process view (secondary). %s\n", sd.inproc)
			table(&w, second)
		}
	}

	if len(r.Profiles) > 0 {
		p("\n## CPU profiles\n\nThe binaries serve no profiles, so these are of the bench process during the in-process view's largest runs (the same " +
			"gateway and API code, with NATS and the receivers beside it), written to `bench/results/profiles/` (`go tool pprof -top <file>`; or " +
			"`go run ./bench -inprocess -only gateway -cpuprofile cpu.pprof` for one of your own).\n")
		for _, pr := range r.Profiles {
			p("\n<details><summary>%s</summary>\n\n```\n%s\n```\n</details>\n", pr.Name, pr.Top)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// The hand-run Go benchmarks' section, below handRunMarker, is kept
	// from the file being replaced: those figures come from `go test -bench`
	// runs, not from this tool.
	if old, err := os.ReadFile(path); err == nil {
		if i := strings.Index(string(old), handRunMarker); i >= 0 {
			w.WriteString("\n")
			w.WriteString(string(old[i:]))
		}
	}
	return os.WriteFile(path, []byte(w.String()), 0o644)
}

// handRunMarker heads the part of BENCHMARKS.md written by hand from `go
// test -bench` runs, which a new report keeps.
const handRunMarker = "## Go micro-benchmarks (hand-run)"

func table(w *strings.Builder, figs []figure) {
	if len(figs) == 0 {
		return
	}
	fmt.Fprintf(w, "\n| figure | N | value | detail | command |\n|---|---|---|---|---|\n")
	for _, f := range figs {
		fmt.Fprintf(w, "| %s | %s | %s %s | %s | `%s` |\n", f.Name, nLabel(f.N), format(f.Value, f.Unit), f.Unit, strings.ReplaceAll(f.Detail, "|", "\\|"), f.Command)
	}
}

// limitNotes explains, from this run's evidence, what holds each missed
// target back.
func limitNotes(b *bench, sz sizes) []string {
	r := b.res
	fig := func(key string) string {
		if f, ok := r.get(key); ok {
			return format(f.Value, f.Unit) + " " + f.Unit
		}
		return "—"
	}
	largest := func(ns []int) string {
		m := 0
		for _, n := range ns {
			m = max(m, n)
		}
		return strconv.Itoa(m)
	}
	var notes []string
	for _, t := range r.Targets {
		if !strings.HasPrefix(t.Status, "missed") {
			continue
		}
		note := "**" + t.Name + "**: " + t.Measured + " against " + t.Target + ". "
		switch {
		case strings.HasPrefix(t.Name, "gateway alone"):
			note += "CPU by process: " + t.Note + ". The receiver's own capacity is " + fig("receiver.capacity") + " (see the self-check), so it is not the limit; " +
				"the in-process view of the same run gives " + fig("inproc.alone.rate."+largest(sz.alone)) + ". " + topFuncs(b, "gateway-alone")
		case strings.HasPrefix(t.Name, "Starling (default payload) vs a raw"):
			note += t.Note + ". " + topFuncs(b, "starling-prosody")
		case strings.HasPrefix(t.Name, "p99"):
			note += t.Note + ". The small post's 10 stanzas enter Prosody's component stream behind the celebrity's stanzas the send stage has already written. " +
				"The send stage paces big batches to ~20 ms of the server's measured rate (xmpp/pacer.go), so most probes wait about that long (see p50); " +
				"the slowest meet the window before the pacer has measured Prosody, or a burst of confirmations that overstates its speed. " +
				"Through the bare endpoint the same probes wait far less (see the latency rows): the wait is in Prosody's queue."
		case strings.HasPrefix(t.Name, "Starling vs Prosody's own PubSub"):
			note += t.Note + ". Prosody runs at ~100% of one core in every Prosody figure and must parse each stanza of a component stream, while PubSub " +
				"builds the notification once and serializes a clone per subscriber, parsing nothing per recipient. A raw component writing Starling's " +
				"stanzas gets " + fig("raw.prosody.minimal."+largest(sz.raw)) + " through Prosody; ejabberd routes them at " + fig("raw.ejabberd.minimal."+largest(sz.ejabberd)) + "."
		case strings.HasPrefix(t.Name, "ingest"):
			note += t.Note + ". " + topFuncs(b, "ingest-api")
		default:
			note += t.Note
		}
		notes = append(notes, note)
	}
	return notes
}

// topFuncs names the heaviest functions of the profile whose name starts
// with prefix.
func topFuncs(b *bench, prefix string) string {
	for _, pr := range b.res.Profiles {
		if !strings.HasPrefix(pr.Name, prefix) {
			continue
		}
		var top []string
		started := false
		for line := range strings.SplitSeq(pr.Top, "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && f[0] == "flat" {
				started = true
				continue
			}
			if started && len(f) >= 6 && len(top) < 6 {
				top = append(top, fmt.Sprintf("`%s` %s", strings.Join(f[5:], " "), f[1]))
			}
		}
		if len(top) > 0 {
			return "In-process profile " + pr.Name + " (flat): " + strings.Join(top, ", ") + "."
		}
	}
	return ""
}
