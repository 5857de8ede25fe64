package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"

	"github.com/go-chi/chi/v5"
	"starling.dev/starling"
)

// Page sizes of GET /v1/users/{username}/statuses.
const (
	defaultStatusPage = 20
	maxStatusPage     = 100
)

// statusIDRE is a post id: a ULID in its canonical upper-case form.
var statusIDRE = regexp.MustCompile(`^[0-7][0-9A-HJKMNP-TV-Z]{25}$`)

// statusPage is the answer to GET /v1/users/{username}/statuses.
type statusPage struct {
	Statuses []statusResponse `json:"statuses"`
	// Next is the "before" of the following page; absent on the last one.
	Next string `json:"next,omitempty"`
}

// getStatus handles GET /v1/statuses/{id}: a post still in its author's
// history (RedisConfig.RecentPosts, 1000 by default).
func (s *server) getStatus(w http.ResponseWriter, r *http.Request) {
	post, ok := s.findStatus(w, r)
	if ok {
		writeJSON(w, http.StatusOK, toStatus(post))
	}
}

// findStatus looks the post of the {id} path parameter up. If it returns
// false it has answered.
func (s *server) findStatus(w http.ResponseWriter, r *http.Request) (starling.Post, bool) {
	id := chi.URLParam(r, "id")
	if !statusIDRE.MatchString(id) {
		noStatus(w, id)
		return starling.Post{}, false
	}
	post, found, err := s.acc.StatusByID(r.Context(), id)
	switch {
	case err != nil:
		s.fail(w, r, "status lookup", err)
		return starling.Post{}, false
	case !found:
		noStatus(w, id)
		return starling.Post{}, false
	}
	return post, true
}

func noStatus(w http.ResponseWriter, id string) {
	writeProblem(w, blank(http.StatusNotFound, fmt.Sprintf("no status %q", id)))
}

// deleteStatus handles DELETE /v1/statuses/{id} (author or admin). It
// publishes the retraction first and removes the post from the history only
// once JetStream holds it, so a 503 leaves everything as it was and a retry
// (which reuses the reserved retraction and its id) is always safe.
func (s *server) deleteStatus(w http.ResponseWriter, r *http.Request) {
	who, ok := s.identify(w, r)
	if !ok {
		return
	}
	post, ok := s.findStatus(w, r)
	if !ok {
		return
	}
	if !who.may(post.Author) {
		forbidden(w, "only the author or the admin may delete this status")
		return
	}
	now := s.cfg.Now().UTC()
	id, err := s.ids.next(now)
	if err != nil {
		s.fail(w, r, "retraction id", err)
		return
	}
	retraction := starling.Post{ID: id, Author: post.Author, Retracts: post.ID, CreatedAt: now}
	retraction, _, err = s.acc.ReserveRetraction(r.Context(), post.Author, post.ID, retraction)
	if err != nil {
		s.fail(w, r, "retraction reservation", err)
		return
	}
	if _, err := s.publishTimed(r, "retraction", retraction); err != nil {
		unavailable(w, "the deletion could not be published right now; retry it")
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), recordTimeout)
	defer cancel()
	if _, err := s.acc.DeletePost(ctx, post.Author, post.ID); err != nil {
		s.fail(w, r, "delete post", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// listStatuses handles GET /v1/users/{username}/statuses?limit=&before=.
func (s *server) listStatuses(w http.ResponseWriter, r *http.Request) {
	username := chi.URLParam(r, "username")
	limit, p := queryLimit(r, defaultStatusPage, maxStatusPage)
	if p != nil {
		writeProblem(w, *p)
		return
	}
	before := r.URL.Query().Get("before")
	if r.URL.Query().Has("before") && !statusIDRE.MatchString(before) {
		writeProblem(w, badQuery("before must be a status id (a ULID)"))
		return
	}
	if !s.userMustExist(w, r, username) {
		return
	}
	posts, err := s.acc.Statuses(r.Context(), username, before, limit)
	if err != nil {
		s.fail(w, r, "statuses", err)
		return
	}
	page := statusPage{Statuses: make([]statusResponse, len(posts))}
	for i, p := range posts {
		page.Statuses[i] = toStatus(p)
	}
	if len(posts) == limit {
		page.Next = posts[len(posts)-1].ID
	}
	writeJSON(w, http.StatusOK, page)
}

// userMustExist answers 404 unless the {username} exists. If it returns
// false it has answered.
func (s *server) userMustExist(w http.ResponseWriter, r *http.Request, username string) bool {
	if !starling.ValidUsername(username) {
		s.noUser(w, username)
		return false
	}
	ok, err := s.acc.UserExists(r.Context(), username)
	switch {
	case err != nil:
		s.fail(w, r, "user lookup", err)
		return false
	case !ok:
		s.noUser(w, username)
		return false
	}
	return true
}

// queryLimit reads the limit query parameter: def when absent, else an
// integer from 1 to max.
func queryLimit(r *http.Request, def, max int) (int, *problem) {
	q := r.URL.Query()
	if !q.Has("limit") {
		return def, nil
	}
	n, err := strconv.Atoi(q.Get("limit"))
	if err != nil || n < 1 || n > max {
		p := badQuery(fmt.Sprintf("limit must be an integer from 1 to %d", max))
		return 0, &p
	}
	return n, nil
}

// badQuery is the 400 answer to a malformed query parameter.
func badQuery(detail string) problem {
	return typed(typeInvalidQuery, "Invalid query parameter", http.StatusBadRequest, detail)
}
