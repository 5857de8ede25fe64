package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"
	"starling.dev/starling"
)

// maxBioChars bounds a bio, in code points.
const maxBioChars = 500

// updateUserRequest is the body of PATCH /v1/users/{username}; an absent
// member is left as it is.
type updateUserRequest struct {
	DisplayName *string `json:"display_name"`
	Bio         *string `json:"bio"`
}

// tokenResponse is the answer to POST /v1/users/{username}/token.
type tokenResponse struct {
	Token string `json:"token"`
}

// updateUser handles PATCH /v1/users/{username} (the owner only).
func (s *server) updateUser(w http.ResponseWriter, r *http.Request) {
	username := chi.URLParam(r, "username")
	who, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	if who.user != username {
		forbidden(w, "only the owner may change this profile")
		return
	}
	var req updateUserRequest
	if p := readJSON(w, r, &req); p != nil {
		writeProblem(w, *p)
		return
	}
	if p := checkUpdate(req); p != nil {
		writeProblem(w, *p)
		return
	}
	prof, err := s.acc.UpdateProfile(r.Context(), username, req.DisplayName, req.Bio)
	s.auth.forget(username) // posts carry the display name the cache holds
	switch {
	case errors.Is(err, starling.ErrUnknownUser):
		s.noUser(w, username)
	case err != nil:
		s.fail(w, r, "update profile", err)
	default:
		writeJSON(w, http.StatusOK, s.toProfile(prof))
	}
}

// checkUpdate returns the problem with a profile change, or nil.
func checkUpdate(req updateUserRequest) *problem {
	if req.DisplayName != nil {
		if err := starling.CheckDisplayName(*req.DisplayName); err != nil {
			p := typed(typeInvalidName, "Invalid display name", http.StatusUnprocessableEntity, err.Error())
			return &p
		}
	}
	if req.Bio != nil {
		n, err := starling.CheckXMLText("bio", *req.Bio)
		if err == nil && n > maxBioChars {
			err = fmt.Errorf("bio has %d characters; the limit is %d", n, maxBioChars)
		}
		if err != nil {
			p := typed(typeInvalidBio, "Invalid bio", http.StatusUnprocessableEntity, err.Error())
			return &p
		}
	}
	return nil
}

// rotateToken handles POST /v1/users/{username}/token (owner or admin): a
// new token, shown once; the old one stops working before the answer.
func (s *server) rotateToken(w http.ResponseWriter, r *http.Request) {
	username := chi.URLParam(r, "username")
	who, ok := s.identify(w, r)
	if !ok {
		return
	}
	if !who.may(username) {
		forbidden(w, "only the owner or the admin may rotate this token")
		return
	}
	if !starling.ValidUsername(username) {
		s.noUser(w, username)
		return
	}
	token := newToken()
	err := s.acc.RotateToken(r.Context(), username, hashToken(token))
	s.auth.forget(username)
	switch {
	case errors.Is(err, starling.ErrUnknownUser):
		s.noUser(w, username)
	case err != nil:
		s.fail(w, r, "rotate token", err)
	default:
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, tokenResponse{Token: token})
	}
}

// deleteUser handles DELETE /v1/users/{username} (admin only): the account,
// its token, followers and posts.
func (s *server) deleteUser(w http.ResponseWriter, r *http.Request) {
	if !s.requireAdmin(w, r) {
		return
	}
	username := chi.URLParam(r, "username")
	if !starling.ValidUsername(username) {
		s.noUser(w, username)
		return
	}
	err := s.acc.DeleteUser(r.Context(), username)
	s.auth.forget(username)
	switch {
	case errors.Is(err, starling.ErrUnknownUser):
		s.noUser(w, username)
	case err != nil:
		s.fail(w, r, "delete user", err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
