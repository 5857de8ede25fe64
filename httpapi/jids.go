package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"starling.dev/starling"
)

// DefaultJIDCodeTTL is how long a code for linking a JID waits when
// Config.JIDCodeTTL does not say.
const DefaultJIDCodeTTL = 10 * time.Minute

// JIDLinks is the part of the store that links Jabber addresses to an
// author, so that they may post by IM (accounts.RedisStore implements it).
type JIDLinks interface {
	// NewJIDCode returns a code that links the bare JID to the author once
	// the JID sends it back, valid for ttl from now, and its expiry; a code
	// asked for earlier is void. starling.ErrUnknownUser if there is no such author; an error
	// with a LinkRefused() string method when the JID is verified already
	// or the author has linked as many JIDs as she may.
	NewJIDCode(ctx context.Context, user, jid string, now time.Time, ttl time.Duration) (code string, expires time.Time, err error)
	// JIDs calls each for the author's linked JIDs in JID order: verified
	// (at: when) or with a code waiting (at: its expiry).
	JIDs(ctx context.Context, user string, now time.Time, each func(jid string, verified bool, at time.Time)) error
	// UnlinkJID ends a link, verified or not, and reports whether there
	// was one.
	UnlinkJID(ctx context.Context, user, jid string) (bool, error)
}

// typeLinkRefused is the 409 of a code the store will not make.
const typeLinkRefused = problemBase + "jid-link-refused"

// jidRequest is the body of POST /v1/users/{username}/jids.
type jidRequest struct {
	JID string `json:"jid"`
}

// jidCode is the answer to it: the code is shown once.
type jidCode struct {
	JID       string `json:"jid"`
	Code      string `json:"code"`
	ExpiresAt string `json:"expires_at"`
}

// linkedJID is one entry of GET /v1/users/{username}/jids.
type linkedJID struct {
	JID        string `json:"jid"`
	Verified   bool   `json:"verified"`
	VerifiedAt string `json:"verified_at,omitempty"`
	ExpiresAt  string `json:"expires_at,omitempty"`
}

type jidList struct {
	JIDs []linkedJID `json:"jids"`
}

// createJIDCode handles POST /v1/users/{username}/jids (the owner only):
// a code the JID sends to the service JID ("verify <code>") to be linked.
func (s *server) createJIDCode(w http.ResponseWriter, r *http.Request) {
	username := chi.URLParam(r, "username")
	who, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	if who.user != username {
		forbidden(w, "only the owner may link a JID to this account")
		return
	}
	var req jidRequest
	if p := readJSON(w, r, &req); p != nil {
		writeProblem(w, *p)
		return
	}
	bare, err := s.normalizeJID(req.JID)
	if err != nil {
		writeProblem(w, invalidJID(err.Error()))
		return
	}
	code, expires, err := s.acc.NewJIDCode(r.Context(), username, bare, s.cfg.Now(), s.cfg.JIDCodeTTL)
	var refused interface{ LinkRefused() string }
	switch {
	case errors.As(err, &refused):
		writeProblem(w, typed(typeLinkRefused, "JID not linked", http.StatusConflict, refused.LinkRefused()))
	case errors.Is(err, starling.ErrUnknownUser):
		s.noUser(w, username)
	case err != nil:
		s.fail(w, r, "JID code", err)
	default:
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusCreated, jidCode{JID: bare, Code: code, ExpiresAt: expires.UTC().Format(time.RFC3339Nano)})
	}
}

// listJIDs handles GET /v1/users/{username}/jids (owner or admin).
func (s *server) listJIDs(w http.ResponseWriter, r *http.Request) {
	username := chi.URLParam(r, "username")
	who, ok := s.identify(w, r)
	if !ok {
		return
	}
	if !who.may(username) {
		forbidden(w, "only the owner or the admin may list these JIDs")
		return
	}
	if !s.userMustExist(w, r, username) {
		return
	}
	list := jidList{JIDs: []linkedJID{}}
	err := s.acc.JIDs(r.Context(), username, s.cfg.Now(), func(jid string, verified bool, at time.Time) {
		l := linkedJID{JID: jid, Verified: verified}
		if verified {
			l.VerifiedAt = at.UTC().Format(time.RFC3339Nano)
		} else {
			l.ExpiresAt = at.UTC().Format(time.RFC3339Nano)
		}
		list.JIDs = append(list.JIDs, l)
	})
	if err != nil {
		s.fail(w, r, "JID list", err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// deleteJID handles DELETE /v1/users/{username}/jids/{jid} (owner or
// admin): the JID can no longer post as the author, nor get the posts that
// mention her. 204 whether or not it was linked, so it can be repeated.
func (s *server) deleteJID(w http.ResponseWriter, r *http.Request) {
	username := chi.URLParam(r, "username")
	who, ok := s.identify(w, r)
	if !ok {
		return
	}
	if !who.may(username) {
		forbidden(w, "only the owner or the admin may unlink these JIDs")
		return
	}
	bare, ok := s.jidParam(w, r)
	if !ok {
		return
	}
	if !s.userMustExist(w, r, username) {
		return
	}
	if _, err := s.acc.UnlinkJID(r.Context(), username, bare); err != nil {
		s.fail(w, r, "unlink JID", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
