package httpapi

import (
	"encoding/json"
	"net/http"
)

// problemBase prefixes the stable URIs naming Starling's problem types.
const problemBase = "https://starling.dev/problems/"

// Problem types clients may branch on. Errors that HTTP already names well
// (401, 403, 404, 405, 413, 415, 429, 500, 503) use "about:blank".
const (
	typeBlank          = "about:blank"
	typeInvalidJSON    = problemBase + "invalid-json"
	typeInvalidKey     = problemBase + "invalid-idempotency-key"
	typeKeyReused      = problemBase + "idempotency-key-reused"
	typeInvalidUser    = problemBase + "invalid-username"
	typeInvalidName    = problemBase + "invalid-display-name"
	typeInvalidText    = problemBase + "invalid-text"
	typeUserExists     = problemBase + "user-exists"
	typeNotReady       = problemBase + "not-ready"
	typeInvalidQuery   = problemBase + "invalid-query"
	typeInvalidBio     = problemBase + "invalid-bio"
	typeInvalidJID     = problemBase + "invalid-jid"
	typeInvalidImport  = problemBase + "invalid-import"
	problemContentType = "application/problem+json"
)

// problem is an RFC 9457 problem details document.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// blank is a problem whose type is about:blank, so its title is the status
// text, as RFC 9457 asks.
func blank(status int, detail string) problem {
	return problem{Type: typeBlank, Title: http.StatusText(status), Status: status, Detail: detail}
}

// typed is a problem of one of Starling's own types.
func typed(typ, title string, status int, detail string) problem {
	return problem{Type: typ, Title: title, Status: status, Detail: detail}
}

// writeProblem sends p as the whole response.
func writeProblem(w http.ResponseWriter, p problem) {
	writeJSONAs(w, problemContentType, p.Status, p)
}

// writeJSON sends v as a JSON response with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	writeJSONAs(w, "application/json", status, v)
}

func writeJSONAs(w http.ResponseWriter, contentType string, status int, v any) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // posts are shown as written; nosniff keeps browsers from guessing HTML
	// The status line is out; a failed write means the client went away.
	_ = enc.Encode(v)
}

// internalError is the 500 answer: it never carries the cause, which is
// logged instead.
func internalError() problem {
	return blank(http.StatusInternalServerError, "the server could not complete the request; it has been logged")
}
