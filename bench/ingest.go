package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"starling.dev/starling/internal/testenv"
)

// loadgen posts {"text": ...} to url with token (when not empty) from
// clients concurrent HTTP clients on keep-alive connections for d, after a
// warm-up of a tenth of d, and returns the posts answered 202, the others,
// and how long the timed part took. Both APIs the ingest scenario compares
// get the same load generator.
func loadgen(url, token string, clients int, d time.Duration) (ok, failed int64, wall time.Duration) {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients, DisableCompression: true}}
	defer hc.CloseIdleConnections()
	var okN, failN atomic.Int64
	start := time.Now()
	warm := start.Add(d / 10)
	deadline := warm.Add(d)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			var body []byte
			for i := 0; ; i++ {
				now := time.Now()
				if now.After(deadline) {
					return
				}
				body = fmt.Appendf(body[:0], `{"text":"ingest %d/%d"}`, c, i)
				req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				resp, err := hc.Do(req)
				counted := now.After(warm)
				if err != nil {
					if counted {
						failN.Add(1)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if !counted {
					continue
				}
				if resp.StatusCode == http.StatusAccepted {
					okN.Add(1)
				} else {
					failN.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return okN.Load(), failN.Load(), time.Since(warm)
}

// ingest: posts/s through POST /v1/statuses (202 after JetStream's ack),
// and, in the headline view, through the minimal API on the same NATS
// server, from the same load generator. No gateway runs meanwhile.
func (b *bench) ingest() {
	tok := b.s.author("ingest")
	b.t.progress("ingest: the API, %d clients for %s", b.sz.clients, b.sz.ingestFor)
	stop := b.profile("ingest-api")
	m := b.meter(nil)
	if !b.v.inproc {
		m.add("bench (load generator)", cpuNow)
	}
	m.withMachine().start()
	ok, failed, wall := loadgen(b.s.st.API+"/v1/statuses", tok, b.sz.clients, b.sz.ingestFor)
	if stop != nil {
		stop()
	}
	cpu := m.since(wall, int(max(ok, 1)), "post")
	b.add(figure{Key: "ingest.api", Scenario: "ingest", Name: fmt.Sprintf("POST /v1/statuses, %d HTTP clients, 202 after the JetStream ack", b.sz.clients),
		Value: float64(ok) / wall.Seconds(), Unit: "posts/s",
		Detail: fmt.Sprintf("%d accepted, %d failed in %s; CPU: %s", ok, failed, wall.Round(time.Millisecond), cpu)})
	if b.v.inproc {
		b.ingestRaw()
		return
	}

	b.t.progress("ingest: the minimal API, %d clients for %s", b.sz.clients, b.sz.ingestFor)
	mark := b.t.Mark()
	defer b.t.Unwind(mark)
	addr := testenv.Addr(testenv.FreePort(b.t))
	logPath := filepath.Join(b.t.TempDir(), "minimalapi.log")
	p := testenv.StartProcess(b.t, logPath, nil, b.binPath("minimalapi"), "-addr", addr, "-nats", b.s.nats.URL)
	b.t.Cleanup(func() { _ = p.Stop() })
	testenv.Eventually(b.t, 15*time.Second, func() bool {
		select {
		case <-p.Exited():
			b.t.Fatalf("minimalapi exited: %s\n%s", p.State(), testenv.Tail(logPath))
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "minimalapi not ready on %s", addr)
	pid := p.Pid()
	nats := b.natsPID
	m = (&meter{}).add("minimalapi", func() time.Duration { return procCPU(pid) }).
		add("nats-server", func() time.Duration { return procCPU(nats) }).add("bench (load generator)", cpuNow).withMachine().start()
	ok, failed, wall = loadgen("http://"+addr+"/v1/statuses", "", b.sz.clients, b.sz.ingestFor)
	cpu = m.since(wall, int(max(ok, 1)), "post")
	b.add(figure{Key: "ingest.minimal", Scenario: "ingest", Name: fmt.Sprintf("minimal Go handler (bench/minimalapi): JSON in, durable publish with Nats-Msg-Id, 202; %d HTTP clients", b.sz.clients),
		Value: float64(ok) / wall.Seconds(), Unit: "posts/s",
		Detail: fmt.Sprintf("%d accepted, %d failed in %s; CPU: %s", ok, failed, wall.Round(time.Millisecond), cpu)})
}

// ingestRaw: the in-process view's old yardstick, PublishAsync of a post's
// JSON with a Nats-Msg-Id to a stream configured like POSTS, ≤ 4096 pending:
// no HTTP, no wait per post.
func (b *bench) ingestRaw() {
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
	start := time.Now()
	deadline := start.Add(b.sz.ingestFor)
	n := 0
	for ; time.Now().Before(deadline); n++ {
		_, err := js.PublishAsync("benchraw.ingest", payload, jetstream.WithMsgID("raw-"+strconv.Itoa(n)))
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			// The window of 4096 stayed full for the client's stall wait (a
			// loaded machine): let the acks catch up, then go on.
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(30 * time.Second):
				b.t.Fatalf("raw publish: acks missing")
			}
			n--
			continue
		}
		if err != nil {
			b.t.Fatalf("raw publish: %v", err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		b.t.Fatalf("raw publish: acks missing")
	}
	wall := time.Since(start)
	b.add(figure{Key: "ingest.raw", Scenario: "ingest", Name: "JetStream PublishAsync on the same server (≤ 4096 pending, Msg-Id, file storage; no HTTP)",
		Value: float64(n-int(perr.Load())) / wall.Seconds(), Unit: "msgs/s",
		Detail: fmt.Sprintf("%d acked, %d failed, %d B each, in %s", n-int(perr.Load()), perr.Load(), len(payload), wall.Round(time.Millisecond))})
}
