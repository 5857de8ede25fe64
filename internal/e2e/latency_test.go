package e2e

import (
	"slices"
	"testing"
	"time"

	"starling.dev/starling/internal/testenv"
)

// BenchmarkPostToDelivery measures the time from sending POST /v1/statuses to
// the delivery's arrival at a follower's XMPP client, through the whole real
// stack. Run `go test -run '^$' -bench PostToDelivery -benchtime 20x
// ./internal/e2e` for the median of 20 posts.
func BenchmarkPostToDelivery(b *testing.B) {
	s := startStack(b, testenv.StartProsody(b))
	alice := s.createUser(b, "alice")
	bob := s.client(b, "bob")
	bob.Ask(b, s.srv.ComponentDomain, "follow alice")
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		st := s.post(b, alice, "latency probe")
		m := bob.Next(b, 10*time.Second)
		if m.OriginID != st.ID {
			b.Fatalf("got %q, want post %s", m.OriginID, st.ID)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "ms-p99")
}
