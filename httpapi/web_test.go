package httpapi

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	"github.com/pb33f/libopenapi-validator/config"
	"github.com/pb33f/libopenapi-validator/paths"
	"github.com/pb33f/libopenapi-validator/responses"
)

// TestWebPagesContract serves the pages through the API's router, rate
// limits included, and checks every answer against the document.
func TestWebPagesContract(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, nil)
	token := e.createUser(t, "alice")
	var st statusResponse
	decode(t, e.post(t, token, "", "<b>not bold</b>"), &st)

	page := e.do(t, request{method: http.MethodGet, path: "/u/alice"})
	if page.Code != http.StatusOK || !strings.Contains(page.Body.String(), "&lt;b&gt;not bold&lt;/b&gt;") {
		t.Fatalf("GET /u/alice = %d\n%s", page.Code, page.Body)
	}
	assets := regexp.MustCompile(`"(/assets/[^"]+)"`).FindAllStringSubmatch(page.Body.String(), -1)
	if len(assets) == 0 {
		t.Fatal("the page links no assets")
	}
	for _, tc := range []struct {
		path        string
		status      int
		contentType string
	}{
		{"/", http.StatusOK, "text/html; charset=utf-8"},
		{"/u/alice.atom", http.StatusOK, "application/atom+xml; charset=utf-8"},
		{"/u/alice/qr.svg", http.StatusOK, "image/svg+xml"},
		{"/u/alice/statuses/" + st.ID, http.StatusOK, "text/html; charset=utf-8"},
		{"/u/alice?before=" + st.ID, http.StatusOK, "text/html; charset=utf-8"},
		{"/u/alice?before=x", http.StatusBadRequest, "text/html; charset=utf-8"},
		{"/u/nobody", http.StatusNotFound, "text/html; charset=utf-8"},
		{"/u/nobody.atom", http.StatusNotFound, "text/html; charset=utf-8"},
		{"/u/alice/statuses/01JAAAAAAAAAAAAAAAAAAAAAAA", http.StatusNotFound, "text/html; charset=utf-8"},
		{"/assets/nothing.css", http.StatusNotFound, "text/html; charset=utf-8"},
		{assets[0][1], http.StatusOK, ""},
	} {
		var rec *responseRecorder
		if strings.HasSuffix(tc.path, ".atom") {
			rec = e.doFeed(t, tc.path)
		} else {
			rec = e.do(t, request{method: http.MethodGet, path: tc.path})
		}
		if rec.Code != tc.status || (tc.contentType != "" && rec.Header().Get("Content-Type") != tc.contentType) {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, rec.Code, rec.Header().Get("Content-Type"), tc.status, tc.contentType)
		}
		if !strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: no Content-Security-Policy", tc.path)
		}
	}
	// A path the pages do not have is still a problem document.
	wantProblem(t, e.do(t, request{method: http.MethodGet, path: "/u/alice/nothing"}), http.StatusNotFound, typeBlank, "/u/alice/nothing")
}

// doFeed requests an Atom feed and checks the answer against the document,
// finding its operation by path templates. The shared check (checkContract)
// looks paths up in a tree of whole segments, which takes /u/alice.atom for
// /u/{username}.
func (e *apiEnv) doFeed(t testing.TB, path string) *responseRecorder {
	t.Helper()
	doc, err := libopenapi.NewDocument(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	m, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, path, nil)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, r)
	item, errs, found := paths.FindPath(r, &m.Model, config.NewValidationOptions(config.DisablePathTree()))
	if len(errs) > 0 || found != "/u/{username}.atom" {
		t.Fatalf("contract: GET %s is %q in openapi.yaml:%s", path, found, describe(errs))
	}
	v := responses.NewResponseBodyValidator(&m.Model)
	if ok, errs := v.ValidateResponseBodyWithPathItem(r, rec.Result(), item, found); !ok {
		t.Fatalf("contract: response %d to GET %s breaks openapi.yaml:%s", rec.Code, path, describe(errs))
	}
	return rec
}
