package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"starling.dev/starling"
	"starling.dev/starling/accounts"
	"starling.dev/starling/fanout"
	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/subscribers"
)

const (
	testDomain     = "microblog.example.org"
	testAdminToken = "admin-secret-token"
)

// testClock is the fixed time handlers see in tests.
var testClock = time.Date(2025, 3, 14, 15, 9, 26, 535_000_000, time.UTC)

// testStore is the two real Redis stores behind the API, one value so that
// tests can wrap it.
type testStore struct {
	*accountStore
	*graphStore
}

// Aliases give the embedded stores distinct field names.
type (
	accountStore = accounts.RedisStore
	graphStore   = subscribers.RedisStore
)

// apiEnv is one API handler over a real Redis store.
type apiEnv struct {
	h     http.Handler
	store *testStore
	reg   *prometheus.Registry
	logs  *syncBuffer
	fake  *fakePublisher // pub, when it is one
}

// responseRecorder is the recorder apiEnv.do returns.
type responseRecorder = httptest.ResponseRecorder

// newRedisStore returns a store with a prefix of its own on a fresh server.
func newRedisStore(t testing.TB) *testStore {
	t.Helper()
	return storeOn(t, testenv.StartRedis(t).Client(t))
}

func storeOn(t testing.TB, c redis.UniversalClient) *testStore {
	t.Helper()
	graph := subscribers.NewRedisStore(c, testenv.Prefix(t))
	acc, err := accounts.NewRedisStore(c, graph, accounts.RedisConfig{Prefix: testenv.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	return &testStore{acc, graph}
}

// deadRedisStore is a real store whose server is not there, so every call
// fails the way a Redis outage does.
func deadRedisStore(t testing.TB) *testStore {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:        fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		MaxRetries:  -1,
		DialTimeout: 200 * time.Millisecond,
	})
	t.Cleanup(func() { _ = c.Close() })
	return storeOn(t, c)
}

// newAPI builds a handler over acc and pub; edit may change the config.
func newAPI(t testing.TB, acc Accounts, pub Publisher, edit func(*Config)) *apiEnv {
	t.Helper()
	e := &apiEnv{reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	cfg := Config{
		Domain:     testDomain,
		AdminToken: testAdminToken,
		Logger:     slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: e.reg,
		Gatherer:   e.reg,
		Now:        func() time.Time { return testClock },
	}
	if edit != nil {
		edit(&cfg)
	}
	graph, ok := acc.(Followers)
	if !ok {
		t.Fatalf("newAPI: %T is not also the social graph", acc)
	}
	h, err := New(acc, graph, pub, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.h = h
	if s, ok := acc.(*testStore); ok {
		e.store = s
	}
	e.fake, _ = pub.(*fakePublisher)
	return e
}

// request is one test request.
type request struct {
	method, path, body string
	header             map[string]string
	ctx                context.Context
}

func (e *apiEnv) do(t testing.TB, req request) *httptest.ResponseRecorder {
	t.Helper()
	return e.doFrom(t, "", req)
}

// doFrom makes a request from the address remote ("" for httptest's).
func (e *apiEnv) doFrom(t testing.TB, remote string, req request) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(req.method, req.path, strings.NewReader(req.body))
	if remote != "" {
		r.RemoteAddr = remote
	}
	if req.ctx != nil {
		r = r.WithContext(req.ctx)
	}
	// Clients send JSON as application/json; the API does not insist, but
	// the contract check holds accepted requests to the document.
	if strings.HasPrefix(req.body, "{") {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, r)
	checkContract(t, r, req.body, rec)
	return rec
}

// createUser makes a user through the API and returns their token.
func (e *apiEnv) createUser(t testing.TB, username string) string {
	t.Helper()
	rec := e.do(t, request{method: http.MethodPost, path: "/v1/users",
		body:   fmt.Sprintf(`{"username":%q,"display_name":"Test User"}`, username),
		header: bearer(testAdminToken)})
	if rec.Code != http.StatusCreated {
		t.Fatalf("create user %s: %d %s", username, rec.Code, rec.Body)
	}
	var u createdUser
	decode(t, rec, &u)
	return u.Token
}

// post sends a post with token and, if key is not empty, an Idempotency-Key.
func (e *apiEnv) post(t testing.TB, token, key, text string) *httptest.ResponseRecorder {
	t.Helper()
	h := bearer(token)
	if key != "" {
		h["Idempotency-Key"] = key
	}
	body, _ := json.Marshal(map[string]string{"text": text})
	return e.do(t, request{method: http.MethodPost, path: "/v1/statuses", body: string(body), header: h})
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

func decode(t testing.TB, rec *httptest.ResponseRecorder, v any) {
	t.Helper()
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		t.Fatalf("decode %q: %v", rec.Body, err)
	}
}

// wantProblem checks that rec is a problem+json document with the status,
// type and a detail containing detail.
func wantProblem(t testing.TB, rec *httptest.ResponseRecorder, status int, typ, detail string) problem {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != problemContentType {
		t.Fatalf("Content-Type = %q, want %q", ct, problemContentType)
	}
	var p problem
	decode(t, rec, &p)
	if p.Status != status || p.Type != typ || p.Title == "" || !strings.Contains(p.Detail, detail) {
		t.Fatalf("problem = %+v, want status %d, type %s, detail containing %q", p, status, typ, detail)
	}
	if typ == typeBlank && p.Title != http.StatusText(status) {
		t.Fatalf("about:blank title = %q, want %q", p.Title, http.StatusText(status))
	}
	return p
}

// fakePublisher stands in for JetStream where only the answer matters. It
// deduplicates by id like JetStream does.
type fakePublisher struct {
	mu    sync.Mutex
	err   error
	calls int
	posts map[string]starling.Post
}

func (f *fakePublisher) PublishPost(_ context.Context, p starling.Post) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return false, f.err
	}
	if f.posts == nil {
		f.posts = map[string]starling.Post{}
	}
	_, dup := f.posts[p.ID]
	f.posts[p.ID] = p
	return dup, nil
}

// fail makes every later publish fail with err (nil: succeed).
func (f *fakePublisher) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakePublisher) stored() map[string]starling.Post {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]starling.Post, len(f.posts))
	for k, v := range f.posts {
		out[k] = v
	}
	return out
}

// failingRecord is a real store whose RecordPost fails, as when Redis drops
// between the publish and the count.
type failingRecord struct{ *testStore }

func (failingRecord) RecordPost(context.Context, starling.Post) error {
	return errors.New("redis: connection reset by peer")
}

// panickingProfile is a real store whose Profile panics.
type panickingProfile struct{ *testStore }

func (panickingProfile) Profile(context.Context, string) (starling.Profile, error) {
	panic("profile exploded")
}

// syncBuffer collects log output written from concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// wantPosts checks the post count in user's profile.
func (e *apiEnv) wantPosts(t *testing.T, user string, n int64) {
	t.Helper()
	prof, err := e.store.Profile(context.Background(), user)
	if err != nil || prof.Posts != n {
		t.Fatalf("profile %+v, %v; want %d posts", prof, err, n)
	}
}

// The real implementations satisfy the interfaces declared here; they cannot
// assert it themselves without importing httpapi.
var (
	_ Accounts  = (*accounts.RedisStore)(nil)
	_ Followers = (*subscribers.RedisStore)(nil)
	_ Publisher = (*fanout.PostPublisher)(nil)
)
