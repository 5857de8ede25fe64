package fanout

import (
	"fmt"
	"testing"
	"time"

	"starling.dev/starling"
)

// TestSendStageAllocationsDoNotGrowWithRecipients is the send stage's
// allocation budget: decoding a delivery batch and walking its recipients,
// chunk by chunk as the sender does, costs a fixed number of allocations
// (the post's JSON), the same for 1 recipient as for 500: none per
// recipient. The writes themselves are held to 0 allocations by the xmpp
// package (TestDeliveryWritesWithoutAllocating).
func TestSendStageAllocationsDoNotGrowWithRecipients(t *testing.T) {
	allocs := func(n int) float64 {
		b := Batch{Post: starling.Post{ID: "01JALLOC", Author: "alice", Text: "a post", CreatedAt: time.Unix(1e9, 0)}, Page: 1}
		for i := range n {
			b.To = append(b.To, fmt.Sprintf("f%d@example.org", i))
		}
		msg, err := b.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		walk := func(jid []byte) error { seen += len(jid); return nil }
		return testing.AllocsPerRun(200, func() {
			d, err := DecodeBatch(msg)
			if err != nil {
				t.Fatal(err)
			}
			_ = d.Chunks(100, func(part Batch) error { return part.Recipients(walk) })
		})
	}
	one, many := allocs(1), allocs(BatchSize)
	t.Logf("decode and walk: %.0f allocations for 1 recipient, %.0f for %d", one, many, BatchSize)
	if many > one {
		t.Fatalf("%.0f allocations for %d recipients, %.0f for one: the send stage allocates per recipient", many, BatchSize, one)
	}
}
