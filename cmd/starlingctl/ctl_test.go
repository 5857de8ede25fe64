package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"starling.dev/starling"
	"starling.dev/starling/accounts"
	"starling.dev/starling/httpapi"
	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/subscribers"
)

const adminToken = "ctl-admin-token"

// memPublisher accepts every post, like a JetStream that is always up.
type memPublisher struct {
	mu    sync.Mutex
	posts []starling.Post
}

func (m *memPublisher) PublishPost(_ context.Context, p starling.Post) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.posts = append(m.posts, p)
	return false, nil
}

// apiServer is the real API handler over a real Redis, served over HTTP.
func apiServer(t *testing.T) (*httptest.Server, *accounts.RedisStore) {
	t.Helper()
	rdb := testenv.StartRedis(t).Client(t)
	graph := subscribers.NewRedisStore(rdb, testenv.Prefix(t))
	acc, err := accounts.NewRedisStore(rdb, graph, accounts.RedisConfig{Prefix: testenv.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.New(acc, graph, &memPublisher{}, httpapi.Config{Domain: "microblog.example.org", AdminToken: adminToken})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, acc
}

type result struct {
	code           int
	stdout, stderr string
}

// ctlRun runs starlingctl against srv with the admin token in the environment.
func ctlRun(t *testing.T, srv *httptest.Server, stdin string, args ...string) result {
	t.Helper()
	env := map[string]string{"STARLINGCTL_URL": srv.URL, "STARLING_ADMIN_TOKEN": adminToken}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var out, errOut bytes.Buffer
	code := runWith(context.Background(), args, lookup, strings.NewReader(stdin), &out, &errOut, progressClock(time.Millisecond))
	return result{code, out.String(), errOut.String()}
}

func TestUsersAndPost(t *testing.T) {
	srv, store := apiServer(t)
	r := ctlRun(t, srv, "", "users", "create", "alice", "--display-name", "Alice")
	var created struct{ Username, Token, JID string }
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &created) != nil || created.Token == "" || created.JID != "alice@microblog.example.org" {
		t.Fatalf("users create: %+v", r)
	}
	if r := ctlRun(t, srv, "", "users", "create", "alice"); r.code != exitFailed || !strings.Contains(r.stderr, `409 Username taken: the username "alice" is taken`) {
		t.Fatalf("second create: %+v", r)
	}
	r = ctlRun(t, srv, "", "--token", created.Token, "post", "hello", "world")
	var status struct{ ID, Text string }
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &status) != nil || status.Text != "hello world" {
		t.Fatalf("post: %+v", r)
	}
	r = ctlRun(t, srv, "", "users", "token", "alice")
	newToken := strings.TrimSpace(r.stdout)
	if r.code != exitOK || !strings.HasPrefix(newToken, "stl_") {
		t.Fatalf("users token: %+v", r)
	}
	if r := ctlRun(t, srv, "", "--token", created.Token, "post", "old token"); r.code != exitFailed || !strings.Contains(r.stderr, "401") {
		t.Fatalf("post with the rotated token: %+v", r)
	}
	if r := ctlRun(t, srv, "", "post", "--token", newToken, "new token"); r.code != exitOK {
		t.Fatalf("post with the new token: %+v", r)
	}
	if r := ctlRun(t, srv, "", "users", "delete", "alice"); r.code != exitOK || r.stdout != "" {
		t.Fatalf("users delete: %+v", r)
	}
	if ok, _ := store.UserExists(context.Background(), "alice"); ok {
		t.Fatal("alice survived")
	}
}

func TestUsage(t *testing.T) {
	srv, _ := apiServer(t)
	for _, args := range [][]string{nil, {"users"}, {"users", "create"}, {"frobnicate"}, {"followers", "import", "alice"}, {"--nope"}, {"post"}} {
		if r := ctlRun(t, srv, "", args...); r.code != exitUsage || !strings.Contains(r.stderr, "usage: starlingctl") {
			t.Errorf("%v: %+v", args, r)
		}
	}
	if r := ctlRun(t, srv, "", "help"); r.code != exitOK {
		t.Errorf("help: %+v", r)
	}
}

func TestUnreachable(t *testing.T) {
	srv, _ := apiServer(t)
	srv.Close()
	if r := ctlRun(t, srv, "", "users", "create", "bob"); r.code != exitFailed || !strings.Contains(r.stderr, "starlingctl: POST /v1/users") {
		t.Fatalf("%+v", r)
	}
}

func TestFollowersImportExport(t *testing.T) {
	srv, _ := apiServer(t)
	ctlRun(t, srv, "", "users", "create", "alice")
	var lines []string
	for i := range 2500 {
		lines = append(lines, fmt.Sprintf("fan%04d@example.net", i))
	}
	file := filepath.Join(t.TempDir(), "followers.txt")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := ctlRun(t, srv, "", "followers", "import", "alice", file)
	if r.code != exitOK || strings.TrimSpace(r.stdout) != `{"already":0,"imported":2500,"invalid":0}` {
		t.Fatalf("import: %+v", r)
	}
	if !strings.Contains(r.stderr, "import: [##############################] 100%") || !strings.Contains(r.stderr, "ETA") ||
		!strings.Contains(r.stderr, "imported 2500, already following 0, invalid 0") {
		t.Fatalf("progress and summary: %s", r.stderr)
	}
	// From standard input, with invalid lines: exit 3, lines named.
	r = ctlRun(t, srv, "fan0000@example.net\nnot@valid@\n# comment\nnew@example.net\n", "followers", "import", "alice", "-")
	if r.code != exitInvalid || strings.TrimSpace(r.stdout) != `{"already":1,"imported":1,"invalid":1}` ||
		!strings.Contains(r.stderr, `line 2: "not@valid@"`) || !strings.Contains(r.stderr, "sent") {
		t.Fatalf("import from stdin: %+v", r)
	}
	r = ctlRun(t, srv, "", "followers", "export", "alice")
	got := strings.Split(strings.TrimSpace(r.stdout), "\n")
	slices.Sort(got)
	want := append(lines, "new@example.net")
	slices.Sort(want)
	if r.code != exitOK || !slices.Equal(got, want) {
		t.Fatalf("export: code %d, %d lines, want %d", r.code, len(got), len(want))
	}
	if r := ctlRun(t, srv, "", "followers", "export", "nobody"); r.code != exitFailed || !strings.Contains(r.stderr, "404") {
		t.Fatalf("export of nobody: %+v", r)
	}
	if r := ctlRun(t, srv, "", "followers", "import", "alice", "/no/such/file"); r.code != exitFailed {
		t.Fatalf("import of a missing file: %+v", r)
	}
}

// TestPostRetryKeepsItsIdempotencyKey: a post answered 503 is retried with
// the Idempotency-Key of its first attempt, so a retry cannot post twice.
func TestPostRetryKeepsItsIdempotencyKey(t *testing.T) {
	var (
		mu   sync.Mutex
		keys []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		first := len(keys) == 1
		mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintln(w, `{"id":"01J","author":"alice","text":"hi"}`)
	}))
	t.Cleanup(srv.Close)
	if r := ctlRun(t, srv, "", "--token", "tok", "post", "hi"); r.code != exitOK {
		t.Fatalf("post: %+v", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
		t.Fatalf("Idempotency-Key per attempt: %q; want one non-empty key twice", keys)
	}
}
