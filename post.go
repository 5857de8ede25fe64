package starling

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Post is one status. Its JSON form travels through JetStream (as the payload
// of a POSTS message and the post part of every delivery batch) and is kept
// in the author's history.
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

// AuthorDisplayName is the name deliveries show for the author.
func (p Post) AuthorDisplayName() string {
	return DisplayName(p.AuthorName, p.Author)
}

// Validate reports whether a decoded post carries everything a delivery needs.
func (p Post) Validate() error {
	switch {
	case p.ID == "":
		return errors.New("starling: post without id")
	case p.Author == "":
		return errors.New("starling: post without author")
	}
	return nil
}

// DecodePost parses a post from its JSON form and validates it.
func DecodePost(data []byte) (Post, error) {
	var p Post
	if err := json.Unmarshal(data, &p); err != nil {
		return Post{}, fmt.Errorf("starling: decode post: %w", err)
	}
	return p, p.Validate()
}
