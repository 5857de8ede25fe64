package subscribers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"starling.dev/starling/internal/testenv"
)

// TestPageStatesMatchDeliverable: the page script and the Go rule agree on
// every combination of the fields the rule reads, missing ones included.
func TestPageStatesMatchDeliverable(t *testing.T) {
	r := testenv.StartRedis(t)
	s := NewRedisStore(r.Client(t), testenv.Prefix(t))
	ctx := context.Background()
	now := time.Now()
	var jids []string
	var want []bool
	i := 0
	for _, paused := range []string{"", "1", "0"} {
		for _, presence := range []string{"", presenceOn, presenceOff} {
			for _, unreachable := range []string{"", formatUnix(now.Add(-2 * bounceRetry)), formatUnix(now.Add(-bounceRetry / 2)), "garbage"} {
				jid := fmt.Sprintf("u%d@example.org", i)
				i++
				fields := map[string]any{}
				if paused != "" {
					fields[fieldPaused] = paused
				}
				if presence != "" {
					fields[fieldPresence] = presence
				}
				if unreachable != "" {
					fields[fieldUnreachable] = unreachable
				}
				if len(fields) > 0 {
					if err := s.rdb.HSet(ctx, s.keys.State(jid), fields).Err(); err != nil {
						t.Fatal(err)
					}
				}
				st, err := s.State(ctx, jid)
				if err != nil {
					t.Fatal(err)
				}
				jids = append(jids, jid)
				want = append(want, st.deliverable(now))
			}
		}
	}
	var rd pageStateReader
	pipe := s.rdb.Pipeline()
	rd.queue(ctx, s, pipe, jids, now)
	_, _ = pipe.Exec(ctx)
	mask, err := rd.mask(ctx, s) // the first run meets an empty script cache
	if err != nil {
		t.Fatal(err)
	}
	if len(mask) != len(jids) {
		t.Fatalf("mask of %d bytes for %d followers", len(mask), len(jids))
	}
	for k, jid := range jids {
		if got := mask[k] == '1'; got != want[k] {
			t.Errorf("%s: script says deliverable=%v, Go says %v", jid, got, want[k])
		}
	}
}
