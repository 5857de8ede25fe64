// Command receiver is the benchmark suite's far end, run as a process of
// its own: it parses a component stream as XML (failing on anything
// malformed), counts the <message/> stanzas by the domain they are
// addressed to, answers IQ requests (the delivery pings) with results, and
// tells the bench over a small HTTP interface when a count reaches a target.
//
//	receiver -connect 127.0.0.1:5347 -domain sink.localhost -secret S -http 127.0.0.1:9001
//	    logs in to an XMPP server as the component for sink.localhost (XEP-0114)
//	receiver -listen 127.0.0.1:5348 -domain microblog.localhost -secret S -http 127.0.0.1:9001
//	    a bare XEP-0114 accept endpoint: the gateway's component connects to it
//	receiver -selfcheck -n 1000000 -payload minimal
//	    parses a stream of n deliveries in memory and prints its capacity as JSON
//
// HTTP (all JSON): GET /stats; POST /watch?key=DOMAIN&add=N registers a wait
// for N more messages to DOMAIN than counted now and answers its id; GET
// /wait?id=ID&timeout=30s answers when the N-th arrived ("at", Unix
// nanoseconds, when it was parsed), 504 at the timeout, 500 once any stream
// has been malformed.
//
// See bench/README.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func main() {
	connect := flag.String("connect", "", "log in to the XMPP server's component port at this address")
	listen := flag.String("listen", "", "accept component connections at this address (a bare XEP-0114 endpoint)")
	domain := flag.String("domain", "", "the component's domain")
	secret := flag.String("secret", "", "the component secret")
	httpAddr := flag.String("http", "", "address of the HTTP interface the bench reads counts from")
	parser := flag.String("parser", "scan", "scan (the receiver's own tokenizer) or encoding/xml")
	check := flag.Bool("selfcheck", false, "parse n deliveries in memory and print the capacity as JSON")
	n := flag.Int("n", 1_000_000, "deliveries in the self-check")
	payload := flag.String("payload", "minimal", "the self-check's delivery: minimal or atom")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *parser != "scan" && *parser != "encoding/xml" {
		fmt.Fprintln(os.Stderr, "receiver: -parser is scan or encoding/xml")
		os.Exit(2)
	}
	if *check {
		res, err := selfCheck(*parser, *payload, *n)
		if err != nil {
			fmt.Fprintln(os.Stderr, "receiver:", err)
			os.Exit(1)
		}
		_ = json.NewEncoder(os.Stdout).Encode(res)
		return
	}
	if (*connect == "") == (*listen == "") || *domain == "" || *httpAddr == "" {
		fmt.Fprintln(os.Stderr, "receiver: give -connect or -listen, -domain, -secret and -http (or -selfcheck)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := config{connect: *connect, listen: *listen, domain: *domain, secret: *secret, http: *httpAddr, parser: *parser}
	if err := run(ctx, cfg, log); err != nil {
		log.Error("receiver", "err", err)
		os.Exit(1)
	}
}

type config struct {
	connect, listen, domain, secret, http, parser string
	// ready, when set, is told the addresses listened on (tests listen on
	// port 0).
	ready func(httpAddr, listenAddr string)
}

// run serves until ctx ends. A stream fault does not end it: the fault is
// reported to the bench, which reads it over HTTP.
func run(ctx context.Context, cfg config, log *slog.Logger) error {
	t := newTally()
	hl, err := net.Listen("tcp", cfg.http)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: t.handler(), ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { _ = srv.Serve(hl) })
	defer srv.Close()

	if cfg.connect != "" {
		conn, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", cfg.connect)
		if err != nil {
			return err
		}
		wg.Go(func() {
			err := t.run(ctx, conn, cfg.parser, func(s *session) error { return s.connect(cfg.domain, cfg.secret) }, true)
			if err != nil && ctx.Err() == nil {
				log.Error("component stream", "domain", cfg.domain, "err", err)
				t.fail(err)
			}
		})
		log.Info("receiver: component", "server", cfg.connect, "domain", cfg.domain, "parser", cfg.parser)
		if cfg.ready != nil {
			cfg.ready(hl.Addr().String(), "")
		}
	} else {
		ln, err := net.Listen("tcp", cfg.listen)
		if err != nil {
			return err
		}
		// Closed on the way out, before wg.Wait, so that Accept returns.
		// (A context.AfterFunc cancelled by a deferred stop could lose
		// the race with the ctx it waits for, and the wait would hang.)
		defer ln.Close()
		wg.Go(func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				wg.Go(func() {
					err := t.run(ctx, conn, cfg.parser, func(s *session) error { return s.accept(cfg.domain, cfg.secret) }, false)
					if err != nil && ctx.Err() == nil {
						log.Info("component connection ended", "remote", conn.RemoteAddr().String(), "err", err)
					}
				})
			}
		})
		log.Info("receiver: endpoint", "listen", cfg.listen, "domain", cfg.domain, "parser", cfg.parser)
		if cfg.ready != nil {
			cfg.ready(hl.Addr().String(), ln.Addr().String())
		}
	}
	<-ctx.Done()
	return nil
}

// statsBody is GET /stats.
type statsBody struct {
	Messages  map[string]int64 `json:"messages"`
	IQs       int64            `json:"iqs"`
	Answered  int64            `json:"answered"`
	Presences int64            `json:"presences"`
	Bytes     int64            `json:"bytes"`
	Sessions  int64            `json:"sessions"`
	Live      int64            `json:"live"`
	CPUNanos  int64            `json:"cpu_ns"`
	Error     string           `json:"error,omitempty"`
}

func (t *tally) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		b := statsBody{Messages: t.counts(), IQs: t.iqs.Load(), Answered: t.answered.Load(), Presences: t.presences.Load(),
			Bytes: t.bytes.Load(), Sessions: t.sessions.Load(), Live: t.live.Load(), CPUNanos: int64(cpuTime())}
		if err := t.err(); err != nil {
			b.Error = err.Error()
		}
		reply(w, http.StatusOK, b)
	})
	mux.HandleFunc("POST /watch", func(w http.ResponseWriter, r *http.Request) {
		add, err := strconv.ParseInt(r.URL.Query().Get("add"), 10, 64)
		if err != nil || add < 0 {
			reply(w, http.StatusBadRequest, map[string]string{"error": "add: a count"})
			return
		}
		wt := t.watch(r.URL.Query().Get("key"), add)
		reply(w, http.StatusOK, map[string]int64{"id": wt.id, "target": wt.target})
	})
	mux.HandleFunc("GET /wait", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.URL.Query().Get("id"), 10, 64)
		timeout, err := time.ParseDuration(r.URL.Query().Get("timeout"))
		if err != nil {
			timeout = 30 * time.Second
		}
		wt := t.lookup(id)
		if wt == nil {
			reply(w, http.StatusNotFound, map[string]string{"error": "no such watch"})
			return
		}
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		select {
		case <-wt.done:
			t.forget(wt)
			reply(w, http.StatusOK, map[string]int64{"at": wt.at.UnixNano(), "count": wt.kc.n.Load()})
		case <-t.failed:
			reply(w, http.StatusInternalServerError, map[string]any{"error": t.err().Error(), "count": wt.kc.n.Load()})
		case <-timer.C:
			t.forget(wt)
			reply(w, http.StatusGatewayTimeout, map[string]any{"error": fmt.Sprintf("%d of %d messages to %s after %s", wt.kc.n.Load(), wt.target, wt.key, timeout), "count": wt.kc.n.Load()})
		case <-r.Context().Done():
		}
	})
	return mux
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
