package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"starling.dev/starling/internal/testenv"
)

// BenchmarkS2SFanout posts to N followers (STARLING_S2S_BENCH_N, default
// 5000) spread evenly over two domains, each op one post delivered to all
// of them (counted where their server hands the messages to a sink
// component, so that no c2s client is what is measured):
//
//   - component: the gateway is a component of one local Prosody, which
//     routes everything to two sink domains it serves;
//   - s2s: the gateway is the server of its domain and federates with two
//     remote Prosodys, each serving one sink domain: one stream per domain,
//     each chunk confirmed by a ping to that domain.
//
// Run: go test -run XXX -bench BenchmarkS2SFanout -benchtime 5x ./internal/e2e/
func BenchmarkS2SFanout(b *testing.B) {
	n := 5000
	if v, err := strconv.Atoi(os.Getenv("STARLING_S2S_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	b.Run(fmt.Sprintf("component/followers=%d", n), func(b *testing.B) {
		domains := []string{"sink-a.localhost", "sink-b.localhost"}
		pros := testenv.StartProsody(b, testenv.WithComponents(domains...))
		s := startStack(b, pros)
		var sinks []*testenv.Sink
		for _, d := range domains {
			sinks = append(sinks, testenv.StartAnsweringSink(b, pros.ComponentAddrOf(d), pros.Secret, d))
		}
		fanoutBench(b, s, sinks, domains, n)
	})
	b.Run(fmt.Sprintf("s2s/followers=%d", n), func(b *testing.B) {
		dns, port := testenv.StartDNS(b), testenv.FreePort(b)
		var hosts string
		var servers []*testenv.ProsodyS2S
		domains := []string{"sink.a.test", "sink.b.test"}
		for i, host := range []string{"a.test", "b.test"} {
			p := testenv.StartProsodyS2S(b, testenv.S2SPeer{Domain: s2sDomain, Port: port, DNS: dns, Host: host, Components: domains[i : i+1]})
			servers = append(servers, p)
			hosts += domains[i] + "=" + p.S2SAddr() + ","
		}
		s := startStack(b, servers[0], map[string]string{
			"STARLING_XMPP_MODE": "s2s", "STARLING_S2S_ADDR": testenv.Addr(port), "STARLING_S2S_HOSTS": hosts,
			"STARLING_S2S_SECRET": "bench dialback secret", "STARLING_S2S_INSECURE": "true", "STARLING_LOG_LEVEL": "info",
		})
		var sinks []*testenv.Sink
		for i, d := range domains {
			sinks = append(sinks, testenv.StartAnsweringSink(b, servers[i].ComponentAddr, servers[i].Secret, d))
		}
		fanoutBench(b, s, sinks, domains, n)
	})
}

// fanoutBench gives an author n followers spread over domains, posts once
// to warm up (streams, dialback, the pacers' measures), then once per op,
// each op done when every sink has counted its share.
func fanoutBench(b *testing.B, s *stack, sinks []*testenv.Sink, domains []string, n int) {
	alice := s.createUser(b, "alice")
	ctx := context.Background()
	jids := make([]string, 0, 1000)
	for i := 0; i < n; i += cap(jids) {
		jids = jids[:0]
		for k := i; k < min(i+cap(jids), n); k++ {
			jids = append(jids, fmt.Sprintf("f%07d@%s", k, domains[k%len(domains)]))
		}
		if _, err := s.Graph.AddFollowers(ctx, "alice", jids); err != nil {
			b.Fatal(err)
		}
	}
	share := func(d int) int64 { return int64((n - d + len(domains) - 1) / len(domains)) }
	posts := int64(0)
	deliver := func() time.Duration {
		start := time.Now()
		s.post(b, alice, "a post for everyone")
		posts++
		var last time.Time
		for i, sink := range sinks {
			at, err := sink.Scan.Await(testenv.SinkMessages, posts*share(i), 120*time.Second)
			if err != nil {
				b.Fatalf("%s: %v", domains[i], err)
			}
			if at.After(last) {
				last = at
			}
		}
		return last.Sub(start)
	}
	warm := deliver()
	b.Logf("warm-up post: %s for %d followers", warm.Round(time.Millisecond), n)
	var total time.Duration
	for b.Loop() {
		total += deliver()
	}
	per := total / time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/1000, "ms/post")
	b.ReportMetric(float64(n)/per.Seconds(), "stanzas/s")
}
