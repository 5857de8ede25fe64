package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"starling.dev/starling"
)

func TestPostStatusProblems(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, nil)
	token := e.createUser(t, "alice")
	post := func(body string, header map[string]string) request {
		return request{method: http.MethodPost, path: "/v1/statuses", body: body, header: header}
	}
	auth := bearer(token)
	withKey := func(key string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + token, "Idempotency-Key": key}
	}
	cases := []struct {
		name   string
		req    request
		status int
		typ    string
		detail string
	}{
		{"no authorization", post(`{"text":"hi"}`, nil), 401, typeBlank, "user's bearer token"},
		{"unknown token", post(`{"text":"hi"}`, bearer("stl_nobody")), 401, typeBlank, "not valid"},
		{"admin token is no user token", post(`{"text":"hi"}`, bearer(testAdminToken)), 401, typeBlank, "not valid"},
		{"malformed json", post(`{"text":"hi"`, auth), 400, typeInvalidJSON, "ends inside"},
		{"unknown field", post(`{"text":"hi","visibility":"public"}`, auth), 400, typeInvalidJSON, `unknown member "visibility"`},
		{"trailing data", post(`{"text":"hi"} {"text":"again"}`, auth), 400, typeInvalidJSON, "after the JSON value"},
		{"text not a string", post(`{"text":42}`, auth), 400, typeInvalidJSON, `"text" must be a JSON string, not number`},
		{"too large", post(`{"text":"`+strings.Repeat("x", 64<<10)+`"}`, auth), 413, typeBlank, "65536 bytes"},
		{"missing text", post(`{}`, auth), 422, typeInvalidText, "empty"},
		{"null text", post(`{"text":null}`, auth), 422, typeInvalidText, "empty"},
		{"empty text", post(`{"text":""}`, auth), 422, typeInvalidText, "empty"},
		{"whitespace only", post(`{"text":" \t\r\n\u3000"}`, auth), 422, typeInvalidText, "only whitespace"},
		{"501 characters", post(`{"text":"`+strings.Repeat("ü", 501)+`"}`, auth), 422, typeInvalidText, "501 characters; the limit is 500"},
		{"invalid utf-8", post("{\"text\":\"caf\xe9!\"}", auth), 422, typeInvalidText, "not valid UTF-8: byte 0xE9 at character 4"},
		{"unpaired surrogate", post(`{"text":"ab\ud83d"}`, auth), 422, typeInvalidText, "unpaired surrogate U+D83D at character 3"},
		{"xml-illegal char", post(`{"text":"abcd\u0001"}`, auth), 422, typeInvalidText, "text contains U+0001 at character 5, which XML cannot carry"},
		{"xml-illegal U+FFFE", post(`{"text":"\ufffe"}`, auth), 422, typeInvalidText, "U+FFFE at character 1"},
		{"empty idempotency key", post(`{"text":"hi"}`, withKey("")), 400, typeInvalidKey, "1 to 255"},
		{"long idempotency key", post(`{"text":"hi"}`, withKey(strings.Repeat("k", 256))), 400, typeInvalidKey, "1 to 255"},
		{"non-ascii idempotency key", post(`{"text":"hi"}`, withKey("clé")), 400, typeInvalidKey, "byte 3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, e.do(t, tc.req), tc.status, tc.typ, tc.detail)
		})
	}
	if prof, err := e.store.Profile(context.Background(), "alice"); err != nil || prof.Posts != 0 {
		t.Fatalf("rejected posts were recorded: %+v, %v", prof, err)
	}
}

func TestPostStatusAccepted(t *testing.T) {
	pub := &fakePublisher{}
	e := newAPI(t, newRedisStore(t), pub, nil)
	token := e.createUser(t, "alice")
	text := strings.Repeat("ü", 499) + "😀" // 500 code points, 1002 bytes
	rec := e.post(t, token, "", text)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var got statusResponse
	decode(t, rec, &got)
	id, err := ulid.ParseStrict(got.ID)
	if err != nil || !id.Timestamp().Equal(testClock.Truncate(time.Millisecond)) {
		t.Fatalf("id %q is not a ULID of %s: %v", got.ID, testClock, err)
	}
	want := statusResponse{ID: got.ID, Author: "alice", Text: text, CreatedAt: "2025-03-14T15:09:26.535Z"}
	if got != want {
		t.Fatalf("answer = %+v, want %+v", got, want)
	}
	if loc := rec.Header().Get("Location"); loc != "/v1/statuses/"+got.ID {
		t.Fatalf("Location = %q", loc)
	}
	if p, ok := pub.stored()[got.ID]; !ok || p.Text != text || p.Author != "alice" || !p.CreatedAt.Equal(testClock) {
		t.Fatalf("published %+v", p)
	}
	e.wantPosts(t, "alice", 1)
	e.wantPublished(t, 1)
}

// wantPublished checks starling_httpapi_posts_published_total.
func (e *apiEnv) wantPublished(t *testing.T, n float64) {
	t.Helper()
	if got := e.counter(t, "starling_httpapi_posts_published_total", nil); got != n {
		t.Fatalf("posts published = %v, want %v", got, n)
	}
}

func TestPostStatusUnavailable(t *testing.T) {
	pub := &fakePublisher{err: errors.New("nats: timeout")}
	e := newAPI(t, newRedisStore(t), pub, nil)
	token := e.createUser(t, "alice")
	rec := e.post(t, token, "", "hello")
	wantProblem(t, rec, 503, typeBlank, "retry")
	if ra := rec.Header().Get("Retry-After"); ra != "1" {
		t.Fatalf("Retry-After = %q", ra)
	}
	e.wantPosts(t, "alice", 0)
	if !strings.Contains(e.logs.String(), "nats: timeout") {
		t.Fatalf("publish error not logged: %s", e.logs)
	}
}

func TestIdempotencyKey(t *testing.T) {
	pub := &fakePublisher{}
	e := newAPI(t, newRedisStore(t), pub, nil)
	token := e.createUser(t, "alice")
	first := acceptedID(t, e.post(t, token, "key-1", "hello"))
	if again := acceptedID(t, e.post(t, token, "key-1", "hello")); again != first {
		t.Fatalf("retry got id %s, first was %s", again, first)
	}
	wantProblem(t, e.post(t, token, "key-1", "hello, world"), 422, typeKeyReused,
		"Idempotency-Key reused with a different body")
	if other := acceptedID(t, e.post(t, token, "key-2", "hello")); other == first {
		t.Fatal("a new key repeated the first post")
	}
	if n := len(pub.stored()); n != 2 {
		t.Fatalf("%d posts published, want 2", n)
	}
	e.wantPosts(t, "alice", 2)
	e.wantPublished(t, 2)
}

// TestIdempotentRetryAfterOutage retries a post whose first publish failed:
// the retry publishes the reserved post, with the first id, and counts it.
func TestIdempotentRetryAfterOutage(t *testing.T) {
	pub := &fakePublisher{err: errors.New("nats: no responders")}
	e := newAPI(t, newRedisStore(t), pub, nil)
	token := e.createUser(t, "alice")
	wantProblem(t, e.post(t, token, "k", "hello"), 503, typeBlank, "retry")
	pub.mu.Lock()
	pub.err = nil
	pub.mu.Unlock()
	id := acceptedID(t, e.post(t, token, "k", "hello"))
	if _, ok := pub.stored()[id]; !ok {
		t.Fatalf("retry did not publish %s", id)
	}
	e.wantPosts(t, "alice", 1)
}

func TestRecordFailureStillAccepted(t *testing.T) {
	store := newRedisStore(t)
	e := newAPI(t, failingRecord{store}, &fakePublisher{}, nil)
	e.store = store
	token := e.createUser(t, "alice")
	acceptedID(t, e.post(t, token, "", "hello"))
	if !strings.Contains(e.logs.String(), "record post failed") {
		t.Fatalf("RecordPost failure not logged: %s", e.logs)
	}
}

func TestConcurrentPostsGetUniqueIDs(t *testing.T) {
	pub := &fakePublisher{}
	e := newAPI(t, newRedisStore(t), pub, nil)
	token := e.createUser(t, "alice")
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if rec := e.post(t, token, "", "hello"); rec.Code != http.StatusAccepted {
				t.Errorf("status %d: %s", rec.Code, rec.Body)
			}
		})
	}
	wg.Wait()
	if n := len(pub.stored()); n != 20 {
		t.Fatalf("%d distinct ids, want 20", n)
	}
	e.wantPosts(t, "alice", 20)
}

// TestIDsFollowCreationOrder posts within one millisecond (the test clock
// stands still) and expects ids in order all the same.
func TestIDsFollowCreationOrder(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, nil)
	token := e.createUser(t, "alice")
	prev := ""
	for range 5 {
		id := acceptedID(t, e.post(t, token, "", "hello"))
		if id <= prev {
			t.Fatalf("id %s does not sort after %s", id, prev)
		}
		prev = id
	}
}

// acceptedID checks for a 202 and returns the post's id.
func acceptedID(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d, want 202: %s", rec.Code, rec.Body)
	}
	var got statusResponse
	decode(t, rec, &got)
	return got.ID
}

// TestIdempotentRetryPublishesOnce: once the first attempt is published, a
// retry answers the same post without publishing again (JetStream would only
// drop the duplicate within two minutes); a first attempt that failed is
// published by the retry.
func TestIdempotentRetryPublishesOnce(t *testing.T) {
	pub := &fakePublisher{}
	e := newAPI(t, newRedisStore(t), pub, nil)
	token := e.createUser(t, "alice")
	calls := func() int {
		pub.mu.Lock()
		defer pub.mu.Unlock()
		return pub.calls
	}

	id := acceptedID(t, e.post(t, token, "k1", "once"))
	if again := acceptedID(t, e.post(t, token, "k1", "once")); again != id || calls() != 1 {
		t.Fatalf("retry: id %s (first %s), %d publishes, want 1", again, id, calls())
	}

	pub.fail(errors.New("nats: timeout"))
	if rec := e.post(t, token, "k2", "twice"); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("failed publish answered %d", rec.Code)
	}
	pub.fail(nil)
	first := acceptedID(t, e.post(t, token, "k2", "twice"))
	if again := acceptedID(t, e.post(t, token, "k2", "twice")); again != first || calls() != 3 {
		t.Fatalf("after a failed attempt: ids %s %s, %d publishes, want 3", first, again, calls())
	}
}

// TestPostReadsNoProfile checks that a post takes the author's display name
// from the token lookup, without a profile read of its own.
func TestPostReadsNoProfile(t *testing.T) {
	store := newRedisStore(t)
	pub := &fakePublisher{}
	e := newAPI(t, panickingProfile{store}, pub, nil)
	e.store = store
	if err := store.CreateUser(context.Background(), "alice", "Alice A.", hashToken("stl_alice"), time.Now()); err != nil {
		t.Fatal(err)
	}
	id := acceptedID(t, e.post(t, "stl_alice", "", "hello"))
	if p := pub.stored()[id]; p.AuthorName != "Alice A." || p.Author != "alice" {
		t.Fatalf("published %+v", p)
	}
	e.wantPosts(t, "alice", 1)
}

// storedButLost is a publisher whose first publish stores the post and then
// fails, as when JetStream's ack is lost to a timeout: the client sees a 503
// and retries, and JetStream reports the retry as a duplicate.
type storedButLost struct {
	fakePublisher
	lost bool
}

func (p *storedButLost) PublishPost(ctx context.Context, post starling.Post) (bool, error) {
	dup, err := p.fakePublisher.PublishPost(ctx, post)
	if err == nil && !p.lost {
		p.lost = true
		return false, errors.New("nats: timeout")
	}
	return dup, err
}

// TestDuplicatePublishIsRecorded: a post that reached JetStream on an attempt
// that failed is recorded by the retry JetStream calls a duplicate, so GET and
// DELETE find the post its followers got.
func TestDuplicatePublishIsRecorded(t *testing.T) {
	pub := &storedButLost{}
	e := newAPI(t, newRedisStore(t), pub, nil)
	token := e.createUser(t, "alice")
	wantProblem(t, e.post(t, token, "k", "hello"), 503, typeBlank, "retry")
	if n := len(pub.stored()); n != 1 {
		t.Fatalf("%d posts stored by the failed attempt, want 1", n)
	}
	id := acceptedID(t, e.post(t, token, "k", "hello"))
	if _, ok := pub.stored()[id]; !ok {
		t.Fatalf("the retry answered %s, which is not the stored post", id)
	}
	if rec := e.do(t, request{method: http.MethodGet, path: "/v1/statuses/" + id}); rec.Code != http.StatusOK {
		t.Fatalf("GET after a duplicate publish: %d %s", rec.Code, rec.Body)
	}
	e.wantPosts(t, "alice", 1)
	e.wantPublished(t, 0) // nothing new reached JetStream on the retry
	if rec := e.do(t, request{method: http.MethodDelete, path: "/v1/statuses/" + id, header: bearer(token)}); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE after a duplicate publish: %d %s", rec.Code, rec.Body)
	}
	if rec := e.do(t, request{method: http.MethodGet, path: "/v1/statuses/" + id}); rec.Code != http.StatusNotFound {
		t.Fatalf("GET after DELETE: %d", rec.Code)
	}
}
