package fanout

import (
	"context"
	"fmt"

	"starling.dev/starling"
)

// FollowerPager reads an author's followers a page at a time.
type FollowerPager interface {
	// ScanFollowers calls page with successive pages of the followers of
	// author who should get posts now, until the scan is complete or page
	// returns an error. count is a hint; a page may hold more or fewer. The
	// slice passed to page is only valid during the call.
	ScanFollowers(ctx context.Context, author string, count int, page func([]string) error) error
}

// BatchSink stores delivery batches durably.
type BatchSink interface {
	// PublishBatch starts storing b and may return before it is durable; it
	// must not keep b.To after it returns.
	PublishBatch(ctx context.Context, b Batch) (Pending, error)
}

// Pending is a batch on its way into the sink.
type Pending interface {
	// Wait returns once the batch is durable, or why it is not.
	Wait(ctx context.Context) error
}

// Fanout is the first stage: it turns one post into delivery batches of at
// most BatchSize recipients.
type Fanout struct {
	pager   FollowerPager
	sink    BatchSink
	metrics *Metrics
}

// NewFanout returns the fanout stage. metrics may be nil.
func NewFanout(pager FollowerPager, sink BatchSink, metrics *Metrics) *Fanout {
	return &Fanout{pager: pager, sink: sink, metrics: metrics}
}

// Fan pages through the author's followers and publishes one batch per page
// (splitting pages larger than BatchSize). It returns once every batch is
// durable, so the caller may then acknowledge the post. progress, if not nil,
// is called after every page so the caller can keep its message alive.
func (f *Fanout) Fan(ctx context.Context, post starling.Post, progress func()) (batches int, err error) {
	var pending []Pending
	err = f.pager.ScanFollowers(ctx, post.Author, BatchSize, func(page []string) error {
		for len(page) > 0 {
			n := min(len(page), BatchSize)
			p, err := f.sink.PublishBatch(ctx, Batch{Post: post, Page: batches, To: page[:n]})
			if err != nil {
				return err
			}
			pending = append(pending, p)
			batches++
			page = page[n:]
		}
		if progress != nil {
			progress()
		}
		return nil
	})
	if err != nil {
		return batches, err
	}
	for i, p := range pending {
		if err := p.Wait(ctx); err != nil {
			return batches, fmt.Errorf("fanout: post %s batch %d: %w", post.ID, i, err)
		}
	}
	f.metrics.fanned(batches)
	return batches, nil
}
