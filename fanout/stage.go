package fanout

import (
	"context"
	"fmt"
)

// FollowerPager reads an author's followers a page at a time.
type FollowerPager interface {
	// FollowerPage appends one page of the author's follower JIDs to buf and
	// returns the cursor of the next page, zero when the scan is complete.
	// count is a hint; a page may hold more or fewer.
	FollowerPage(ctx context.Context, author string, cursor uint64, count int, buf []string) ([]string, uint64, error)
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
func (f *Fanout) Fan(ctx context.Context, post Post, progress func()) (batches int, err error) {
	var pending []Pending
	buf := make([]string, 0, 2*BatchSize)
	var cursor uint64
	for {
		buf, cursor, err = f.pager.FollowerPage(ctx, post.Author, cursor, BatchSize, buf[:0])
		if err != nil {
			return batches, err
		}
		for page := buf; len(page) > 0; {
			n := min(len(page), BatchSize)
			p, err := f.sink.PublishBatch(ctx, Batch{Post: post, Page: batches, To: page[:n]})
			if err != nil {
				return batches, err
			}
			pending = append(pending, p)
			batches++
			page = page[n:]
		}
		if progress != nil {
			progress()
		}
		if cursor == 0 {
			break
		}
	}
	for i, p := range pending {
		if err := p.Wait(ctx); err != nil {
			return batches, fmt.Errorf("fanout: post %s batch %d: %w", post.ID, i, err)
		}
	}
	f.metrics.fanned(batches)
	return batches, nil
}
