package fanout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"starling.dev/starling"
)

// FollowerPager walks an author's followers in a stable order.
type FollowerPager interface {
	// WalkFollowers calls page with successive pages of at most count of
	// the author's followers, in JID order, starting after the JID after
	// ("" for the first). Unless all is set, only the followers who should
	// get posts now are passed (a retraction must reach everyone). last is
	// the last JID the page covered, passed or not: a walk resumed after it
	// misses nobody and repeats nobody, whatever was followed, unfollowed
	// or restarted meanwhile. A page may be empty (everyone on it filtered
	// out). The slice is only valid during the call.
	WalkFollowers(ctx context.Context, author, after string, count int, all bool, page func(jids []string, last string) error) error
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
	opt     options
}

// NewFanout returns the fanout stage. metrics may be nil. Without
// WithTracking a retried post is fanned out from its first follower again.
func NewFanout(pager FollowerPager, sink BatchSink, metrics *Metrics, opts ...Option) *Fanout {
	return &Fanout{pager: pager, sink: sink, metrics: metrics, opt: buildOptions(opts)}
}

// errRetracted stops the walk of a post whose deletion has begun.
var errRetracted = errors.New("fanout: post retracted")

// Fan pages through the author's followers (and, WithAudience, the post's
// trackers and mentioned JIDs, merged with them) and publishes one batch
// per page (splitting pages larger than BatchSize). It returns once every batch is
// durable, so the caller may then acknowledge the post. progress, if not nil,
// is called after every page so the caller can keep its message alive.
//
// With WithTracking, Fan resumes where the post's last attempt left off and
// saves its progress after each page's batches are stored. One page is in
// flight at a time: page N+1 is read while JetStream stores page N, and
// published only once page N's progress is saved, so a retry repeats at most
// the one page whose progress was not saved yet (and JetStream drops that
// page as a duplicate when it is the same page within its two-minute window:
// Batch.MsgID names the recipients). The walk stops at the first page after
// the post's deletion began.
//
// A retraction goes to every follower, whatever their presence or pause,
// and never overtakes its post. The rule: the API reserves the retraction
// (RetractionChecker) before publishing it; the send stage counts a batch
// as being sent (ProgressStore.BeginSend) before it checks for a
// retraction, and drops the batch if there is one. So once the retraction
// is reserved, no batch of the post can start sending, and when
// ProgressStore.Sending reads zero afterwards, none is being sent either:
// whatever of the post a follower will ever get has reached the XMPP server
// (which keeps the order of the component stream). The retraction's fanout
// waits for that zero before its first page. A sender that died mid-batch
// leaves a count that expires, which bounds the wait.
func (f *Fanout) Fan(ctx context.Context, post starling.Post, progress func()) (batches int, err error) {
	if progress == nil {
		progress = func() {}
	}
	w := walk{f: f, post: post, tick: progress}
	if f.opt.progress != nil {
		if w.saved, err = f.opt.progress.Progress(ctx, post.Author, post.ID); err != nil {
			return 0, err
		}
		if w.saved.Done {
			return 0, nil
		}
	}
	if post.Retracts != "" {
		if err := f.awaitSends(ctx, post.Author, post.Retracts, progress); err != nil {
			return 0, err
		}
	}
	page := func(jids []string, last string) error { return w.page(ctx, jids, last) }
	err = f.walk(ctx, post, w.saved.After, page)
	switch {
	case errors.Is(err, errRetracted):
		// Whatever is in flight may be stored or not: its sends drop it.
		w.inflight = nil
	case err != nil:
		return w.batches, err
	default:
		if err := w.stored(ctx); err != nil {
			return w.batches, err
		}
	}
	w.saved.Done = true
	if err := w.save(ctx); err != nil {
		return w.batches, err
	}
	f.metrics.fanned(w.batches)
	return w.batches, nil
}

// walk pages through the post's recipients after the JID after: the
// author's followers and, WithAudience, the post's audience merged in.
func (f *Fanout) walk(ctx context.Context, post starling.Post, after string, page func([]string, string) error) error {
	all := post.Retracts != ""
	if f.opt.mentions == nil {
		return f.pager.WalkFollowers(ctx, post.Author, after, BatchSize, all, page)
	}
	ap, ok := f.pager.(AudiencePager)
	if !ok {
		return errNoAudiencePager
	}
	a, err := f.audience(ctx, post)
	if err != nil {
		return err
	}
	return ap.WalkAudience(ctx, post.Author, a, after, BatchSize, all, page)
}

// walk is one attempt at a post's fanout.
type walk struct {
	f    *Fanout
	post starling.Post
	tick func()
	// saved is the progress as last made durable, or would have been
	// without a ProgressStore.
	saved Progress
	// inflight are the batches of the last page published, not yet known
	// to be stored; inflightLast is that page's cursor.
	inflight     []Pending
	inflightLast string
	batches      int
}

// page publishes one page's batches, after the previous page's are stored
// and its progress saved.
func (w *walk) page(ctx context.Context, jids []string, last string) error {
	if err := w.settle(ctx); err != nil {
		return err
	}
	if len(jids) == 0 {
		w.tick()
		return nil
	}
	if err := w.checkRetracted(ctx); err != nil {
		return err
	}
	for len(jids) > 0 {
		n := min(len(jids), BatchSize)
		p, err := w.f.sink.PublishBatch(ctx, Batch{Post: w.post, Page: w.saved.Next + len(w.inflight), To: jids[:n]})
		if err != nil {
			return err
		}
		w.inflight = append(w.inflight, p)
		w.batches++
		jids = jids[n:]
	}
	w.inflightLast = last
	w.tick()
	return nil
}

// checkRetracted stops the walk of a post whose deletion has begun (a
// retraction is never retracted).
func (w *walk) checkRetracted(ctx context.Context) error {
	if w.f.opt.retractions == nil || w.post.Retracts != "" {
		return nil
	}
	gone, err := w.f.opt.retractions.Retracted(ctx, w.post.Author, w.post.ID)
	if err != nil {
		return err
	}
	if gone {
		return errRetracted
	}
	return nil
}

// settle waits until the batches in flight are stored, then saves the
// progress past their page.
func (w *walk) settle(ctx context.Context) error {
	if len(w.inflight) == 0 {
		return nil
	}
	if err := w.stored(ctx); err != nil {
		return err
	}
	return w.save(ctx)
}

// stored waits until the batches in flight are stored and moves the
// progress (in memory) past their page.
func (w *walk) stored(ctx context.Context) error {
	for i, p := range w.inflight {
		if err := p.Wait(ctx); err != nil {
			return fmt.Errorf("fanout: post %s batch %d: %w", w.post.ID, w.saved.Next+i, err)
		}
	}
	if len(w.inflight) > 0 {
		w.saved.After = w.inflightLast
		w.saved.Next += len(w.inflight)
		w.inflight = w.inflight[:0]
	}
	return nil
}

func (w *walk) save(ctx context.Context) error {
	if w.f.opt.progress == nil {
		return nil
	}
	return w.f.opt.progress.SaveProgress(ctx, w.post.Author, w.post.ID, w.saved)
}

// awaitSends returns once no batch of the author's post id is being sent
// (see Fan), calling tick now and then to keep the caller's message alive.
func (f *Fanout) awaitSends(ctx context.Context, author, id string, tick func()) error {
	if f.opt.progress == nil {
		return nil
	}
	pause := retractionPollMin
	for {
		n, err := f.opt.progress.Sending(ctx, author, id)
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		tick()
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return ctx.Err()
		}
		pause = min(2*pause, retractionPollMax)
	}
}
