package fanout

import (
	"context"
	"time"
)

// Progress is how far the fanout of one post has come, as last made
// durable. A retried fanout (the post redelivered after a crash or a
// failure) starts from it instead of from the first follower.
type Progress struct {
	// After is the last follower JID walked whose batch JetStream has
	// stored; the walk resumes after it. "" is the start.
	After string
	// Next is the number of the next batch (Batch.Page).
	Next int
	// Done is set once every batch is stored, or the post was retracted
	// and its fanout stopped: a retry then has nothing left to do.
	Done bool
}

// ProgressStore keeps, per post, the fanout's progress and how many of the
// post's batches are being sent, for every replica to see. The key is the
// post's author and id.
type ProgressStore interface {
	// Progress returns the saved progress (the zero Progress if none).
	Progress(ctx context.Context, author, postID string) (Progress, error)
	// SaveProgress makes p durable.
	SaveProgress(ctx context.Context, author, postID string, p Progress) error
	// BeginSend counts a batch of the post as being sent, until EndSend.
	// A crashed sender's count expires on its own after a while.
	BeginSend(ctx context.Context, author, postID string) error
	EndSend(ctx context.Context, author, postID string) error
	// Sending returns how many batches of the post are being sent.
	Sending(ctx context.Context, author, postID string) (int64, error)
}

// RetractionChecker reports whether the deletion of a post has begun (the
// API reserves its retraction before publishing it).
type RetractionChecker interface {
	Retracted(ctx context.Context, author, postID string) (bool, error)
}

// BatchProgress keeps, per delivery batch, how many of its leading
// recipients the XMPP server has confirmed, so that a batch redelivered
// after a crash or a failure skips them. The key is the post's author and
// the batch's MsgID (which names its recipients too).
type BatchProgress interface {
	// Confirmed returns the saved count (0 if none).
	Confirmed(ctx context.Context, author, batchID string) (int, error)
	// SetConfirmed raises the saved count to n (a lower n changes
	// nothing). The record expires on its own: some time after the
	// batch's last useful attempt, or, when whole (n is every recipient:
	// the batch was sent and is being acknowledged), soon, as it only
	// serves a redelivery after a lost ack.
	SetConfirmed(ctx context.Context, author, batchID string, n int, whole bool) error
}

// Option adds a dependency to the fanout or the send stage.
type Option func(*options)

type options struct {
	progress    ProgressStore
	retractions RetractionChecker
	batches     BatchProgress
	mentions    MentionStore // WithAudience
}

// WithTracking makes both stages durable and retraction-aware; give the
// same option to NewFanout and NewSend. The fanout stage saves each post's
// progress after each page (so a retry resumes there) and stops paging a
// retracted post; the send stage drops the batches of a retracted post and
// counts the batches it is sending, so that a retraction is fanned out
// only once none of its post's batches is on its way (see Fanout.Fan).
func WithTracking(progress ProgressStore, retractions RetractionChecker) Option {
	return func(o *options) { o.progress, o.retractions = progress, retractions }
}

// WithBatchProgress makes the send stage resume a redelivered batch after
// the recipients the XMPP server confirmed on an earlier attempt, instead
// of sending it whole again: give it to NewSend. It needs a StanzaSender
// that is also a ConfirmingSender. A batch's first attempt reads nothing;
// while a batch of several chunks is sent, its confirmed count is saved as
// it grows (one write at a time, coalesced) and once more when it is sent
// whole, so that a redelivery after a lost ack sends nothing.
func WithBatchProgress(bp BatchProgress) Option {
	return func(o *options) { o.batches = bp }
}

func buildOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// retractionPoll bounds the pause between two looks at the sends of the
// post a retraction waits for.
const (
	retractionPollMin = 10 * time.Millisecond
	retractionPollMax = 500 * time.Millisecond
)
