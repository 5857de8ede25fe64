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
	// SenderConsumer is the durable pull consumer of later pages (lanes 1
	// and up) on DeliveriesStream.
	SenderConsumer = "sender"
	// FirstSenderConsumer is the durable pull consumer of first pages
	// (lane 0) on DeliveriesStream.
	FirstSenderConsumer = "sender-first"
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
