package fanout

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Subject prefixes and stream names of the two JetStream stages.
const (
	// PostsStream holds every accepted post (limits retention, file storage).
	PostsStream = "POSTS"
	// PostsSubjectPrefix is followed by the author's username.
	PostsSubjectPrefix = "starling.posts."
	// DeliveriesStream is the work queue of delivery batches.
	DeliveriesStream = "DELIVERIES"
	// DeliveriesSubjectPrefix is followed by the batch's lane number.
	DeliveriesSubjectPrefix = "starling.deliver."
	// FanoutConsumer is the durable pull consumer on PostsStream.
	FanoutConsumer = "fanout"
	// SenderConsumer is the durable pull consumer on DeliveriesStream.
	SenderConsumer = "sender"
	// BatchSize is the largest number of recipients in one Batch.
	BatchSize = 500
)

// Post is one status as it travels through the pipeline. Its JSON form is the
// payload of a message on PostsStream and the post part of every Batch.
type Post struct {
	// ID is time-ordered (a ULID) and doubles as the XEP-0359 origin-id of
	// every delivery and as the JetStream Nats-Msg-Id.
	ID     string `json:"id"`
	Author string `json:"author"`
	// AuthorName is the author's display name when the post was made; it
	// names the author in the Atom entry of each delivery. Empty means the
	// username.
	AuthorName string    `json:"author_name,omitempty"`
	Text       string    `json:"text"`
	CreatedAt  time.Time `json:"created_at"`
	// Retracts, when set, makes this post the retraction of the author's
	// post with that id: it is fanned out like a post and delivered as an
	// XEP-0424 retraction instead of a message. Text is then unused.
	Retracts string `json:"retracts,omitempty"`
}

// Subject is the JetStream subject a post is published on.
func (p Post) Subject() string { return PostsSubjectPrefix + p.Author }

// Validate reports whether a decoded post carries everything a delivery needs.
func (p Post) Validate() error {
	switch {
	case p.ID == "":
		return errors.New("fanout: post without id")
	case p.Author == "":
		return errors.New("fanout: post without author")
	}
	return nil
}

// DecodePost parses a post from a PostsStream message.
func DecodePost(data []byte) (Post, error) {
	var p Post
	if err := json.Unmarshal(data, &p); err != nil {
		return Post{}, fmt.Errorf("fanout: decode post: %w", err)
	}
	return p, p.Validate()
}

// Batch is one unit of delivery work: a post and up to BatchSize bare JIDs
// of followers. Page numbers the batches of one post from zero, so the pair
// (Post.ID, Page) identifies a batch for JetStream deduplication.
type Batch struct {
	Post Post     `json:"post"`
	Page int      `json:"page"`
	To   []string `json:"to"`
}

// MsgID is the Nats-Msg-Id of the batch, so that a post redelivered to the
// fanout stage does not enqueue the same page twice.
func (b Batch) MsgID() string { return fmt.Sprintf("%s.%d", b.Post.ID, b.Page) }

// DecodeBatch parses a batch from a DeliveriesStream message.
func DecodeBatch(data []byte) (Batch, error) {
	var b Batch
	if err := json.Unmarshal(data, &b); err != nil {
		return Batch{}, fmt.Errorf("fanout: decode batch: %w", err)
	}
	if err := b.Post.Validate(); err != nil {
		return Batch{}, err
	}
	if len(b.To) > BatchSize {
		return Batch{}, fmt.Errorf("fanout: batch of %d recipients exceeds %d", len(b.To), BatchSize)
	}
	return b, nil
}
