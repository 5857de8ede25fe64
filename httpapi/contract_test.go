package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
)

// The contract check: every request a test makes through apiEnv.do and
// every answer it gets are validated against openapi.yaml.
//
//   - Every response must be documented: its status for the operation, its
//     content type, its body's schema and its required headers.
//   - A request the API accepted (2xx) must be valid by the document too,
//     or the document is stricter than the code. Requests the API refused
//     are test inputs meant to be invalid and are not checked.
//   - A request to a path or method the document does not have must have
//     been answered 404 or 405 (as a problem, which wantProblem checks).

var (
	contractOnce sync.Once
	contract     validator.Validator
	contractErr  []error
)

func contractValidator(t testing.TB) validator.Validator {
	t.Helper()
	contractOnce.Do(func() {
		doc, err := libopenapi.NewDocument(OpenAPI)
		if err != nil {
			contractErr = []error{err}
			return
		}
		contract, contractErr = validator.NewValidator(doc, config.WithFormatAssertions())
	})
	if len(contractErr) > 0 {
		t.Fatalf("openapi.yaml: %v", contractErr)
	}
	return contract
}

// checkContract validates one exchange; body is the request body sent.
func checkContract(t testing.TB, r *http.Request, body string, rec *httptest.ResponseRecorder) {
	t.Helper()
	v := contractValidator(t)
	resp := rec.Result()
	fresh := func() *http.Request {
		c := r.Clone(r.Context())
		c.Body = io.NopCloser(strings.NewReader(body))
		return c
	}
	if !documented(r) {
		if rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed {
			t.Fatalf("contract: %s %s is not in openapi.yaml but was answered %d", r.Method, r.URL.Path, rec.Code)
		}
		return
	}
	if ok, errs := v.ValidateHttpResponse(fresh(), resp); !ok {
		t.Fatalf("contract: response %d to %s %s breaks openapi.yaml:%s\nbody: %s",
			rec.Code, r.Method, r.URL, describe(errs), rec.Body)
	}
	if rec.Code < 300 {
		if ok, errs := v.ValidateHttpRequestSync(fresh()); !ok {
			t.Fatalf("contract: accepted request %s %s breaks openapi.yaml:%s", r.Method, r.URL, describe(errs))
		}
	}
}

// documented reports whether the document has an operation for the
// request's method and path, by asking a router built from the document.
func documented(r *http.Request) bool {
	return contractRouter().Match(chi.NewRouteContext(), r.Method, r.URL.EscapedPath())
}

var (
	routerOnce sync.Once
	docRouter  *chi.Mux
)

// contractRouter is a chi router with one route per operation of the document.
func contractRouter() *chi.Mux {
	routerOnce.Do(func() {
		docRouter = chi.NewRouter()
		for path, methods := range documentedOperations() {
			for _, m := range methods {
				docRouter.MethodFunc(m, path, func(http.ResponseWriter, *http.Request) {})
			}
		}
	})
	return docRouter
}

// documentedOperations lists the document's paths and their methods.
func documentedOperations() map[string][]string {
	doc, err := libopenapi.NewDocument(OpenAPI)
	if err != nil {
		panic(err)
	}
	m, errs := doc.BuildV3Model()
	if errs != nil {
		panic(errs)
	}
	out := map[string][]string{}
	for path, item := range m.Model.Paths.PathItems.FromOldest() {
		for method := range item.GetOperations().FromOldest() {
			out[path] = append(out[path], strings.ToUpper(method))
		}
	}
	return out
}

func describe(errs []*verrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("\n  " + e.Message + ": " + e.Reason)
		for _, f := range e.SchemaValidationErrors {
			b.WriteString("\n    " + f.Reason + " at " + f.FieldPath)
		}
	}
	return b.String()
}

// router returns the handler's chi router.
func (e *apiEnv) router(t testing.TB) chi.Routes {
	t.Helper()
	r, ok := e.h.(chi.Routes)
	if !ok {
		t.Fatalf("handler %T is not a chi router", e.h)
	}
	return r
}

// TestOpenAPIDocument checks the document against the OpenAPI 3.1 schema.
func TestOpenAPIDocument(t *testing.T) {
	v := contractValidator(t)
	if ok, errs := v.ValidateDocument(); !ok {
		t.Fatalf("openapi.yaml is not a valid OpenAPI document:%s", describe(errs))
	}
	if !bytes.HasPrefix(OpenAPI, []byte("openapi: 3.1")) {
		t.Fatal("openapi.yaml is not OpenAPI 3.1")
	}
}

// TestOpenAPICoversEveryRoute compares the router's routes with the
// document's operations, both ways.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	e := newAPI(t, deadRedisStore(t), &fakePublisher{}, nil)
	var routes []string
	err := chi.Walk(e.router(t), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes = append(routes, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for path, methods := range documentedOperations() {
		for _, m := range methods {
			ops = append(ops, m+" "+path)
		}
	}
	slices.Sort(routes)
	slices.Sort(ops)
	if !slices.Equal(routes, ops) {
		t.Fatalf("routes and documented operations differ:\nroutes: %v\ndocument: %v", routes, ops)
	}
}

func TestServeOpenAPI(t *testing.T) {
	e := newAPI(t, deadRedisStore(t), &fakePublisher{}, nil)
	rec := e.do(t, request{method: http.MethodGet, path: "/openapi.yaml"})
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/yaml" || !bytes.Equal(rec.Body.Bytes(), OpenAPI) {
		t.Fatalf("GET /openapi.yaml = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
}

// TestContractCatchesDrift feeds the check answers the document does not
// allow and expects each to fail the test.
func TestContractCatchesDrift(t *testing.T) {
	cases := []struct {
		name, method, path string
		status             int
		contentType, body  string
	}{
		{"undocumented status", http.MethodGet, "/v1/users/alice", http.StatusTeapot, problemContentType, `{"type":"about:blank","title":"x","status":418,"detail":""}`},
		{"body off schema", http.MethodGet, "/v1/users/alice", http.StatusOK, "application/json", `{"username":"alice"}`},
		{"undocumented member", http.MethodGet, "/healthz", http.StatusOK, "application/json", `{"status":"ok","extra":1}`},
		{"wrong content type", http.MethodGet, "/v1/statuses/01JAAAAAAAAAAAAAAAAAAAAAAA", http.StatusNotFound, "text/html", `<p>no</p>`},
		{"429 without Retry-After", http.MethodGet, "/v1/users/alice", http.StatusTooManyRequests, problemContentType, `{"type":"about:blank","title":"Too Many Requests","status":429,"detail":""}`},
		{"undocumented path answered 200", http.MethodGet, "/v1/secret", http.StatusOK, "application/json", `{}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rec.Header().Set("Content-Type", tc.contentType)
			rec.WriteHeader(tc.status)
			rec.WriteString(tc.body)
			ft := &fatalRecorder{TB: t}
			func() {
				defer func() { _ = recover() }()
				checkContract(ft, httptest.NewRequest(tc.method, tc.path, nil), "", rec)
			}()
			if !ft.failed {
				t.Fatal("the contract check let it pass")
			}
		})
	}
}

// fatalRecorder notes a Fatalf instead of ending the test.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Fatalf(string, ...any) { f.failed = true; panic("fatal") }
func (f *fatalRecorder) Helper()               {}
