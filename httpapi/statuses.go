package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"starling.dev/starling"
)

// recordTimeout bounds RecordPost, which runs even if the client has gone:
// the post is in JetStream by then and should be counted.
const recordTimeout = 5 * time.Second

// maxIdempotencyKey is the longest Idempotency-Key accepted.
const maxIdempotencyKey = 255

// postRequest is the body of POST /v1/statuses.
type postRequest struct {
	Text postText `json:"text"`
}

// statusResponse is a post as the API shows it.
type statusResponse struct {
	ID        string `json:"id"`
	Author    string `json:"author"`
	Text      string `json:"text"`
	CreatedAt string `json:"created_at"`
}

// postStatus handles POST /v1/statuses: it answers 202 only once JetStream
// has acknowledged the post.
func (s *server) postStatus(w http.ResponseWriter, r *http.Request) {
	author, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	key, p := idempotencyKey(r)
	if p != nil {
		writeProblem(w, *p)
		return
	}
	text, p := s.readPostText(w, r)
	if p != nil {
		writeProblem(w, *p)
		return
	}
	s.acceptPost(w, r, author, key, text)
}

// readPostText decodes and validates the body of a post.
func (s *server) readPostText(w http.ResponseWriter, r *http.Request) (string, *problem) {
	var req postRequest
	if p := readJSON(w, r, &req); p != nil {
		return "", p
	}
	if err := starling.CheckPostText(string(req.Text), s.cfg.MaxPostChars); err != nil {
		p := typed(typeInvalidText, "Invalid post text", http.StatusUnprocessableEntity, err.Error())
		return "", &p
	}
	return starling.NormalizeNewlines(string(req.Text)), nil
}

// acceptPost makes the post (or finds the one stored under the
// Idempotency-Key) and publishes it. The author's display name, which
// deliveries show, was read with the token.
func (s *server) acceptPost(w http.ResponseWriter, r *http.Request, who caller, key, text string) {
	now := s.cfg.Now().UTC()
	id, err := s.ids.next(now)
	if err != nil {
		s.fail(w, r, "post id", err)
		return
	}
	author := who.user
	post := starling.Post{ID: id, Author: author, AuthorName: who.name, Text: text, CreatedAt: now}
	if key == "" {
		s.publish(w, r, post)
		return
	}
	post, seen, ok := s.reserve(w, r, key, post)
	if !ok {
		return
	}
	if seen {
		// A retry. Once the first attempt is known to be published, the
		// answer is repeated without publishing: JetStream would drop the
		// duplicate only within its two-minute window.
		done, err := s.acc.IdempotentDone(r.Context(), author, key)
		if err != nil {
			s.fail(w, r, "idempotency lookup", err)
			return
		}
		if done {
			w.Header().Set("Location", "/v1/statuses/"+post.ID)
			writeJSON(w, http.StatusAccepted, toStatus(post))
			return
		}
	}
	if s.publish(w, r, post) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), recordTimeout)
		defer cancel()
		if err := s.acc.MarkIdempotentDone(ctx, author, key); err != nil {
			s.log.ErrorContext(ctx, "httpapi: idempotency record not completed", "post", post.ID, "err", err)
		}
	}
}

// reserve stores post under the author's Idempotency-Key, or returns the post
// stored there by an earlier request. If it returns false it has answered.
// seen reports a retry.
func (s *server) reserve(w http.ResponseWriter, r *http.Request, key string, post starling.Post) (first starling.Post, seen, ok bool) {
	first, seen, err := s.acc.ReserveIdempotent(r.Context(), post.Author, key, post)
	if err != nil {
		s.fail(w, r, "idempotency reservation", err)
		return starling.Post{}, false, false
	}
	if first.Text != post.Text {
		writeProblem(w, typed(typeKeyReused, "Idempotency-Key reused", http.StatusUnprocessableEntity,
			"Idempotency-Key reused with a different body"))
		return starling.Post{}, false, false
	}
	return first, seen, true
}

// publish hands the post to JetStream and answers 202 once it is stored, or
// 503 if it could not be; it reports whether the post is stored. The post is
// recorded in the author's history even when JetStream reports a duplicate:
// the attempt that stored it may have failed before recording it (its
// client saw a 503 or a timeout), and followers have it all the same.
func (s *server) publish(w http.ResponseWriter, r *http.Request, post starling.Post) bool {
	duplicate, err := s.publishTimed(r, "post", post)
	if err != nil {
		unavailable(w, "the post could not be stored right now; retry it")
		return false
	}
	if !duplicate {
		s.metrics.published.Inc()
	}
	s.record(r, post)
	w.Header().Set("Location", "/v1/statuses/"+post.ID)
	writeJSON(w, http.StatusAccepted, toStatus(post))
	return true
}

// toStatus is a post as the API shows it.
func toStatus(p starling.Post) statusResponse {
	return statusResponse{ID: p.ID, Author: p.Author, Text: p.Text, CreatedAt: p.CreatedAt.UTC().Format(time.RFC3339Nano)}
}

// publishTimed publishes a post or retraction and observes how long
// JetStream took. Failures are logged here.
func (s *server) publishTimed(r *http.Request, kind string, post starling.Post) (bool, error) {
	start := time.Now()
	duplicate, err := s.pub.PublishPost(r.Context(), post)
	result := "ok"
	switch {
	case err != nil:
		result = "error"
		s.log.WarnContext(r.Context(), "httpapi: publish failed", "kind", kind, "post", post.ID, "err", err,
			"request_id", middleware.GetReqID(r.Context()))
	case duplicate:
		result = "duplicate"
	}
	s.metrics.publish.WithLabelValues(kind, result).Observe(time.Since(start).Seconds())
	return duplicate, err
}

// unavailable answers 503 with Retry-After: JetStream could not take a
// post, and a retry (with the same Idempotency-Key) is safe.
func unavailable(w http.ResponseWriter, detail string) {
	w.Header().Set("Retry-After", "1")
	writeProblem(w, blank(http.StatusServiceUnavailable, detail))
}

// record keeps a stored post in the author's history (recording it again
// changes nothing). The post is already in JetStream, so a failure here is
// logged but does not fail the request: the gateway's fanout stage records
// every post it takes too, which repairs the history.
func (s *server) record(r *http.Request, post starling.Post) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), recordTimeout)
	defer cancel()
	if err := s.acc.RecordPost(ctx, post); err != nil {
		s.log.ErrorContext(ctx, "httpapi: record post failed", "post", post.ID, "err", err)
	}
}

// idempotencyKey returns the request's Idempotency-Key, "" if it has none.
func idempotencyKey(r *http.Request) (string, *problem) {
	keys := r.Header.Values("Idempotency-Key")
	switch {
	case len(keys) == 0:
		return "", nil
	case len(keys) > 1:
		return "", badKey("send one Idempotency-Key header, not " + strconv.Itoa(len(keys)))
	case len(keys[0]) == 0 || len(keys[0]) > maxIdempotencyKey:
		return "", badKey("Idempotency-Key must be 1 to 255 characters long")
	}
	for i := 0; i < len(keys[0]); i++ {
		if c := keys[0][i]; c < 0x20 || c > 0x7E {
			return "", badKey("Idempotency-Key must be printable ASCII; byte " + strconv.Itoa(i+1) + " is not")
		}
	}
	return keys[0], nil
}

func badKey(detail string) *problem {
	p := typed(typeInvalidKey, "Invalid Idempotency-Key", http.StatusBadRequest, detail)
	return &p
}
