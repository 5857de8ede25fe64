package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"
	"starling.dev/starling"
)

// createUserRequest is the body of POST /v1/users.
type createUserRequest struct {
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
}

// createdUser is the answer to POST /v1/users; the only time the token is
// ever shown.
type createdUser struct {
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	JID         string `json:"jid"`
	Token       string `json:"token"`
}

// profileResponse is the answer to GET /v1/users/{username}.
type profileResponse struct {
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	Bio         string `json:"bio"`
	JID         string `json:"jid"`
	Followers   int64  `json:"followers"`
	Posts       int64  `json:"posts"`
}

// toProfile is an author's record as the API shows it.
func (s *server) toProfile(p starling.Profile) profileResponse {
	return profileResponse{
		Username: p.Username, DisplayName: p.DisplayName, Bio: p.Bio, JID: s.jid(p.Username),
		Followers: p.Followers, Posts: p.Posts,
	}
}

// createUser handles POST /v1/users (admin only).
func (s *server) createUser(w http.ResponseWriter, r *http.Request) {
	if !s.requireAdmin(w, r) {
		return
	}
	var req createUserRequest
	if p := readJSON(w, r, &req); p != nil {
		writeProblem(w, *p)
		return
	}
	if p := checkNewUser(req); p != nil {
		writeProblem(w, *p)
		return
	}
	token := newToken()
	err := s.acc.CreateUser(r.Context(), req.Username, req.DisplayName, hashToken(token), s.cfg.Now().UTC())
	switch {
	case errors.Is(err, starling.ErrUserExists):
		writeProblem(w, typed(typeUserExists, "Username taken", http.StatusConflict,
			fmt.Sprintf("the username %q is taken", req.Username)))
	case err != nil:
		s.fail(w, r, "create user", err)
	default:
		w.Header().Set("Location", "/v1/users/"+req.Username)
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusCreated, createdUser{
			Username: req.Username, DisplayName: req.DisplayName, JID: s.jid(req.Username), Token: token,
		})
	}
}

// checkNewUser returns the problem with a new user's fields, or nil.
func checkNewUser(req createUserRequest) *problem {
	if !starling.ValidUsername(req.Username) {
		p := typed(typeInvalidUser, "Invalid username", http.StatusUnprocessableEntity,
			"username must be "+starling.UsernameRule)
		return &p
	}
	if err := starling.CheckDisplayName(req.DisplayName); err != nil {
		p := typed(typeInvalidName, "Invalid display name", http.StatusUnprocessableEntity, err.Error())
		return &p
	}
	return nil
}

// getUser handles GET /v1/users/{username}.
func (s *server) getUser(w http.ResponseWriter, r *http.Request) {
	username := chi.URLParam(r, "username")
	if !starling.ValidUsername(username) {
		// No such user can exist; do not let the name reach the store's keys.
		s.noUser(w, username)
		return
	}
	prof, err := s.acc.Profile(r.Context(), username)
	switch {
	case errors.Is(err, starling.ErrUnknownUser):
		s.noUser(w, username)
	case err != nil:
		s.fail(w, r, "profile", err)
	default:
		writeJSON(w, http.StatusOK, s.toProfile(prof))
	}
}

func (s *server) noUser(w http.ResponseWriter, username string) {
	writeProblem(w, blank(http.StatusNotFound, fmt.Sprintf("no user %q", username)))
}

// jid is an author's bare JID.
func (s *server) jid(username string) string { return username + "@" + s.cfg.Domain }
