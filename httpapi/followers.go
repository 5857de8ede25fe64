package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/go-chi/chi/v5"
	"mellium.im/xmpp/jid"
)

// Page sizes of GET /v1/users/{username}/followers: a page holds up to
// limit JIDs, in JID order.
const (
	defaultFollowerPage = 100
	maxFollowerPage     = 1000
)

// cursorRE is the shape of the opaque follower page cursor (base64url),
// at most maxCursor long (a JID is at most 3,071 bytes).
var cursorRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

const maxCursor = 4096

// followerPage is the answer to GET /v1/users/{username}/followers.
type followerPage struct {
	Followers []string `json:"followers"`
	// Next is the "cursor" of the following page; absent on the last one.
	Next string `json:"next,omitempty"`
}

// followerChange is the answer to PUT /v1/users/{username}/followers/{jid}.
type followerChange struct {
	JID   string `json:"jid"`
	Added bool   `json:"added"`
}

// normalizeJID turns a follower JID into the form the gateway stores: the
// bare JID as mellium's jid.Parse normalises it (PRECIS), exactly as the
// component does with the address the XMPP server stamps on a stanza. A full
// JID is accepted and stored bare, since deliveries go to bare JIDs. A JID
// without a localpart (a server) or at the gateway's own domain cannot
// follow anyone.
func (s *server) normalizeJID(raw string) (string, error) {
	j, err := jid.Parse(raw)
	switch {
	case err != nil:
		return "", fmt.Errorf("not a valid JID: %v", err)
	case j.Localpart() == "":
		return "", fmt.Errorf("a follower JID needs a localpart (user@domain)")
	case j.Domainpart() == s.cfg.Domain:
		return "", fmt.Errorf("JIDs at the gateway's own domain %s cannot follow", s.cfg.Domain)
	}
	return j.Bare().String(), nil
}

// listFollowers handles GET /v1/users/{username}/followers?limit=&cursor=
// (owner or admin: follower JIDs are personal data).
func (s *server) listFollowers(w http.ResponseWriter, r *http.Request) {
	username := chi.URLParam(r, "username")
	who, ok := s.identify(w, r)
	if !ok {
		return
	}
	if !who.may(username) {
		forbidden(w, "only the owner or the admin may list these followers")
		return
	}
	limit, p := queryLimit(r, defaultFollowerPage, maxFollowerPage)
	if p != nil {
		writeProblem(w, *p)
		return
	}
	cursor := r.URL.Query().Get("cursor")
	if r.URL.Query().Has("cursor") && (len(cursor) > maxCursor || !cursorRE.MatchString(cursor)) {
		writeProblem(w, badQuery("cursor must be the next value of an earlier page"))
		return
	}
	if !s.userMustExist(w, r, username) {
		return
	}
	jids, next, err := s.graph.FollowerPage(r.Context(), username, cursor, limit, make([]string, 0, limit))
	var bad interface{ BadCursor() bool }
	if errors.As(err, &bad) && bad.BadCursor() {
		writeProblem(w, badQuery("cursor must be the next value of an earlier page"))
		return
	}
	if err != nil {
		s.fail(w, r, "follower page", err)
		return
	}
	page := followerPage{Followers: jids, Next: next}
	writeJSON(w, http.StatusOK, page)
}

// putFollower handles PUT /v1/users/{username}/followers/{jid} (admin).
func (s *server) putFollower(w http.ResponseWriter, r *http.Request) {
	username, bare, ok := s.followerTarget(w, r)
	if !ok {
		return
	}
	added, err := s.graph.Follow(r.Context(), username, bare)
	if err != nil {
		s.fail(w, r, "follow", err)
		return
	}
	writeJSON(w, http.StatusOK, followerChange{JID: bare, Added: added})
}

// deleteFollower handles DELETE /v1/users/{username}/followers/{jid}
// (admin). It answers 204 whether or not the JID followed, so a migration
// can be replayed.
func (s *server) deleteFollower(w http.ResponseWriter, r *http.Request) {
	username, bare, ok := s.followerTarget(w, r)
	if !ok {
		return
	}
	if _, err := s.graph.Unfollow(r.Context(), username, bare); err != nil {
		s.fail(w, r, "unfollow", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// followerTarget checks the admin token, the user and the JID of a follower
// route. If it returns false it has answered.
func (s *server) followerTarget(w http.ResponseWriter, r *http.Request) (string, string, bool) {
	if !s.requireAdmin(w, r) {
		return "", "", false
	}
	username := chi.URLParam(r, "username")
	bare, ok := s.jidParam(w, r)
	if !ok {
		return "", "", false
	}
	if !s.userMustExist(w, r, username) {
		return "", "", false
	}
	return username, bare, true
}

func invalidJID(detail string) problem {
	return typed(typeInvalidJID, "Invalid JID", http.StatusUnprocessableEntity, detail)
}

// isTextPlain reports whether a Content-Type is text/plain (or absent).
func isTextPlain(ct string) bool {
	if ct == "" {
		return true
	}
	media, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(media), "text/plain")
}

// jidParam returns the bare JID of the route's {jid} parameter. If it
// returns false it has answered.
func (s *server) jidParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	raw := chi.URLParam(r, "jid")
	if r.URL.RawPath != "" {
		// chi routed on the escaped path; a JID may hold an escaped "/".
		var err error
		if raw, err = url.PathUnescape(raw); err != nil {
			raw = ""
		}
	}
	bare, err := s.normalizeJID(raw)
	if err != nil {
		writeProblem(w, invalidJID(err.Error()))
		return "", false
	}
	return bare, true
}
