package xmpp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"starling.dev/starling"
	"starling.dev/starling/internal/ratelimit"
)

// Posting by IM: a JID an author linked to her account (verify <code>)
// publishes with "post <text>" exactly as POST /v1/statuses does: the same
// text rules, a rate limit per author, a ULID, a publish that returns once
// JetStream has stored the post (its id as Nats-Msg-Id), and the record in
// the history. The fanout stage then delivers it like any other post.

// Publisher hands a post to the pipeline and returns once it is durably
// stored (fanout.PostPublisher).
type Publisher interface {
	PublishPost(ctx context.Context, p starling.Post) (duplicate bool, err error)
}

// PostConfig configures posting by IM. Each field says what its zero value
// means.
type PostConfig struct {
	// MaxPostChars is the longest post in code points; zero means
	// starling.DefaultMaxPostChars. Give it the API's value.
	MaxPostChars int
	// Rate refills each author's allowance of posts by IM, per second;
	// zero means 1.
	Rate float64
	// Burst is how many posts an author may send by IM at once; zero
	// means 5.
	Burst int
}

// recordTimeout bounds the record of a post published by IM, which runs
// even when the command's own time is up: the post is in JetStream.
const recordTimeout = 3 * time.Second

// WithPosting lets verified JIDs post by IM through pub. Without it,
// "post" is answered with a refusal.
func WithPosting(pub Publisher, cfg PostConfig) Option {
	if cfg.MaxPostChars <= 0 {
		cfg.MaxPostChars = starling.DefaultMaxPostChars
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 1
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 5
	}
	limits, err := ratelimit.New(ratelimit.Config{Rate: cfg.Rate, Burst: cfg.Burst})
	if err != nil {
		panic("xmpp: post limiter: " + err.Error()) // the values were just made valid
	}
	return func(c *Component) {
		if c.im == nil { // New may apply options to a bare Component first
			return
		}
		c.im.posting = &posting{pub: pub, maxChars: cfg.MaxPostChars, limits: limits, entropy: ulid.Monotonic(rand.Reader, 0)}
	}
}

// posting is what WithPosting gives the interpreter.
type posting struct {
	pub      Publisher
	maxChars int
	limits   *ratelimit.Limiter // per author
	mu       sync.Mutex         // guards entropy, which is not safe for concurrent use
	entropy  *ulid.MonotonicEntropy
}

// newID returns a post id made at t: a ULID, as the API makes them.
func (p *posting) newID(t time.Time) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id, err := ulid.New(ulid.Timestamp(t), p.entropy)
	if err != nil {
		return "", fmt.Errorf("xmpp: post id: %w", err)
	}
	return id.String(), nil
}

// post publishes text as the author from is verified for: target when it
// was sent to an author's JID, otherwise the one author from is verified
// for.
func (im *IM) post(ctx context.Context, from, target, text string) (string, error) {
	if im.posting == nil {
		return "Posting by IM is not enabled here.", nil
	}
	authors, err := im.store.VerifiedAuthors(ctx, from)
	if err != nil {
		return "", err
	}
	author, refusal := im.poster(authors, target)
	if refusal != "" {
		return refusal, nil
	}
	if !im.posting.limits.Allow(author) {
		return "Not posted: too many posts at once. Send it again in a moment.", nil
	}
	if err := starling.CheckPostText(text, im.posting.maxChars); err != nil {
		return "Not posted: " + err.Error() + ".", nil
	}
	p, err := im.store.Profile(ctx, author)
	if err != nil {
		return "", err
	}
	now := im.now().UTC()
	id, err := im.posting.newID(now)
	if err != nil {
		return "", err
	}
	post := starling.Post{ID: id, Author: author, AuthorName: p.DisplayName, Text: starling.NormalizeNewlines(text), CreatedAt: now}
	if _, err := im.posting.pub.PublishPost(ctx, post); err != nil {
		im.log.Warn("im post not published", "author", author, "post", id, "err", err)
		return "Not posted: the post could not be stored right now. Send it again in a moment.", nil
	}
	// Recorded even if the command's time ran out meanwhile; the fanout
	// stage records it too, should this fail.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := im.store.RecordPost(rctx, post); err != nil {
		im.log.Error("im post not recorded", "author", author, "post", id, "err", err)
	}
	return fmt.Sprintf("Posted as %s: status %s.", author, id), nil
}

// poster picks the author a post is made as, or says why there is none.
func (im *IM) poster(authors []string, target string) (author, refusal string) {
	switch {
	case target != "":
		for _, a := range authors {
			if a == target {
				return a, ""
			}
		}
		return "", fmt.Sprintf("Not posted: this address is not verified to post as %s. The author links it with POST /v1/users/%s/jids, then sends “verify <code>” from here.", target, target)
	case len(authors) == 1:
		return authors[0], ""
	case len(authors) == 0:
		return "", "Not posted: this address is not verified for any author. An author links it with POST /v1/users/<username>/jids, then sends “verify <code>” from here."
	default:
		jids := make([]string, len(authors))
		for i, a := range authors {
			jids[i] = a + "@" + im.domain
		}
		return "", fmt.Sprintf("Not posted: this address may post as %s; send “post <text>” to the author's own address: %s.", strings.Join(authors, " or "), strings.Join(jids, " or "))
	}
}

// verify checks the code from sent.
func (im *IM) verify(ctx context.Context, from, code string) (string, error) {
	user, already, err := im.store.VerifyJID(ctx, from, code, im.now())
	var refused interface{ VerifyRefused() (string, int) }
	if errors.As(err, &refused) {
		reason, left := refused.VerifyRefused()
		return codeRefusal(reason, left), nil
	}
	if err != nil {
		return "", err
	}
	if already {
		return fmt.Sprintf("This address is already verified for %s.", user), nil
	}
	return fmt.Sprintf("Verified: this address may now post as %s. Send “post <text>” here or to %s@%s.", user, user, im.domain), nil
}

func codeRefusal(reason string, left int) string {
	switch reason {
	case "wrong":
		tries := fmt.Sprintf("%d tries", left)
		if left == 1 {
			tries = "1 try"
		}
		return "That code is not right. " + tries + " left before the codes waiting for this address are void."
	case "expired":
		return "That code has expired. Ask for a new one with POST /v1/users/<username>/jids."
	case "burned":
		return "Too many wrong codes: the codes waiting for this address are void. Ask for a new one with POST /v1/users/<username>/jids."
	default:
		return "No code is waiting for this address. An author asks for one with POST /v1/users/<username>/jids, then sends “verify <code>” from here."
	}
}
