package httpapi

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"

	"starling.dev/starling"
)

// tokenPrefix marks Starling tokens, so secret scanners can recognise them.
const tokenPrefix = "stl_"

// newToken returns a fresh user token: 32 random bytes, base64url encoded.
func newToken() string {
	b := make([]byte, 32)
	// crypto/rand.Read never returns an error; it crashes the program
	// rather than hand out predictable bytes.
	_, _ = rand.Read(b)
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// hashToken is the only form in which a token is stored: SHA-256, in hex.
// Tokens carry 256 bits of entropy, so a fast unsalted hash is enough.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// requireAdmin checks the admin token. If it returns false it has answered.
func (s *server) requireAdmin(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.AdminToken == "" {
		writeProblem(w, blank(http.StatusForbidden, "admin endpoints disabled"))
		return false
	}
	token, ok := bearerToken(r)
	if !ok {
		unauthorized(w, "", "this endpoint needs the admin bearer token")
		return false
	}
	if !s.isAdminToken(token) {
		writeProblem(w, blank(http.StatusForbidden, "the bearer token is not the admin token"))
		return false
	}
	return true
}

// authenticate returns the user owning the request's bearer token. If it
// returns false it has answered.
func (s *server) authenticate(w http.ResponseWriter, r *http.Request) (caller, bool) {
	token, ok := bearerToken(r)
	if !ok {
		unauthorized(w, "", "this endpoint needs the user's bearer token")
		return caller{}, false
	}
	return s.userByToken(w, r, token)
}

// unauthorized answers 401 with the RFC 6750 challenge.
func unauthorized(w http.ResponseWriter, code, detail string) {
	challenge := `Bearer realm="starling"`
	if code != "" {
		challenge += `, error="` + code + `"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeProblem(w, blank(http.StatusUnauthorized, detail))
}

// caller is who a request authenticated as: the admin, or a user (with the
// display name read along with the token, which posts carry).
type caller struct {
	admin bool
	user  string
	name  string
}

// may reports whether the caller is the admin or the user named.
func (c caller) may(user string) bool { return c.admin || c.user == user }

// identify authenticates the request's bearer token as the admin token or a
// user's token. If it returns false it has answered 401.
func (s *server) identify(w http.ResponseWriter, r *http.Request) (caller, bool) {
	token, ok := bearerToken(r)
	if !ok {
		unauthorized(w, "", "this endpoint needs a bearer token")
		return caller{}, false
	}
	if s.isAdminToken(token) {
		return caller{admin: true}, true
	}
	return s.userByToken(w, r, token)
}

// isAdminToken compares token with the admin token in constant time.
func (s *server) isAdminToken(token string) bool {
	if s.cfg.AdminToken == "" {
		return false
	}
	// Comparing hashes keeps the comparison constant-time in the length too.
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], s.adminHash[:]) == 1
}

// userByToken looks a user token up by its hash. If it returns false it has
// answered.
func (s *server) userByToken(w http.ResponseWriter, r *http.Request, token string) (caller, bool) {
	hash := hashToken(token)
	if who, ok := s.auth.get(hash); ok {
		return who, true
	}
	user, name, err := s.acc.UserByTokenHash(r.Context(), hash)
	switch {
	case errors.Is(err, starling.ErrUnknownToken):
		unauthorized(w, "invalid_token", "the bearer token is not valid")
		return caller{}, false
	case err != nil:
		s.fail(w, r, "token lookup", err)
		return caller{}, false
	}
	who := caller{user: user, name: name}
	s.auth.put(hash, who)
	return who, true
}

// forbidden answers 403.
func forbidden(w http.ResponseWriter, detail string) {
	writeProblem(w, blank(http.StatusForbidden, detail))
}
