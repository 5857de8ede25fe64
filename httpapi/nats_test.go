package httpapi

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"starling.dev/starling/internal/health"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"starling.dev/starling"
	"starling.dev/starling/fanout"
	"starling.dev/starling/internal/testenv"
)

// jetStreamAPI is an API handler over a real Redis and an embedded NATS.
type jetStreamAPI struct {
	*apiEnv
	nats *testenv.NATS
	nc   *nats.Conn
	js   jetstream.JetStream
}

func newJetStreamAPI(t *testing.T, ensureStreams bool) *jetStreamAPI {
	t.Helper()
	n := testenv.StartNATS(t)
	nc := n.Conn(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if ensureStreams {
		if err := fanout.EnsureStreams(context.Background(), js, fanout.StreamLimits{}); err != nil {
			t.Fatal(err)
		}
	}
	rdb := testenv.StartRedis(t).Client(t)
	natsReady := func(context.Context) error {
		if s := nc.Status(); s != nats.CONNECTED {
			return errors.New("nats: " + s.String())
		}
		return nil
	}
	redisReady := func(ctx context.Context) error { return rdb.Ping(ctx).Err() }
	e := newAPI(t, storeOn(t, rdb), fanout.NewPostPublisher(js), func(c *Config) {
		c.Ready = []health.Check{{Name: "nats", Func: natsReady}, {Name: "redis", Func: redisReady}}
	})
	return &jetStreamAPI{apiEnv: e, nats: n, nc: nc, js: js}
}

// TestPostThroughJetStream shows that 202 means stored: the post is read
// back from POSTS right after the answer, without waiting; that a retry with
// the same Idempotency-Key answers the same id without a second message; and
// that with NATS gone the answer is 503 with Retry-After, never 202.
func TestPostThroughJetStream(t *testing.T) {
	e := newJetStreamAPI(t, true)
	ctx := context.Background()
	token := e.createUser(t, "alice")
	if rec := e.do(t, request{method: http.MethodGet, path: "/readyz"}); rec.Code != http.StatusOK {
		t.Fatalf("readyz = %d %s", rec.Code, rec.Body)
	}

	id := acceptedID(t, e.post(t, token, "retry-me", "hello, followers"))
	stream, err := e.js.Stream(ctx, fanout.PostsStream)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, fanout.PostsSubjectPrefix+"alice")
	if err != nil {
		t.Fatalf("post not in %s right after 202: %v", fanout.PostsStream, err)
	}
	post, err := starling.DecodePost(msg.Data)
	if err != nil || post.ID != id || post.Text != "hello, followers" || msg.Header.Get(jetstream.MsgIDHeader) != id {
		t.Fatalf("stored %+v (Nats-Msg-Id %q), %v; want id %s", post, msg.Header.Get(jetstream.MsgIDHeader), err, id)
	}

	if again := acceptedID(t, e.post(t, token, "retry-me", "hello, followers")); again != id {
		t.Fatalf("retry answered id %s, first was %s", again, id)
	}
	wantStreamMsgs(t, stream, 1)
	e.wantPosts(t, "alice", 1)
	e.wantPublished(t, 1)

	e.nats.Stop()
	testenv.Eventually(t, 5*time.Second, func() bool { return e.nc.Status() != nats.CONNECTED },
		"client still connected after the server stopped")
	reqCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	rec := e.do(t, request{method: http.MethodPost, path: "/v1/statuses", body: `{"text":"into the void"}`,
		header: bearer(token), ctx: reqCtx})
	wantProblem(t, rec, http.StatusServiceUnavailable, typeBlank, "retry")
	if ra := rec.Header().Get("Retry-After"); ra != "1" {
		t.Fatalf("Retry-After = %q, want 1", ra)
	}
	e.wantPosts(t, "alice", 1)
	wantProblem(t, e.do(t, request{method: http.MethodGet, path: "/readyz"}), 503, typeNotReady, "nats: nats:")
}

// TestPostWithoutStream answers 503 when JetStream has no POSTS stream.
func TestPostWithoutStream(t *testing.T) {
	e := newJetStreamAPI(t, false)
	token := e.createUser(t, "alice")
	rec := e.post(t, token, "", "hello")
	wantProblem(t, rec, http.StatusServiceUnavailable, typeBlank, "retry")
	if rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("Retry-After = %q", rec.Header().Get("Retry-After"))
	}
	e.wantPosts(t, "alice", 0)
}

func wantStreamMsgs(t *testing.T, stream jetstream.Stream, n uint64) {
	t.Helper()
	info, err := stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != n {
		t.Fatalf("%s holds %d messages, want %d", info.Config.Name, info.State.Msgs, n)
	}
}

// TestDeleteThroughJetStream shows that 204 means the retraction is stored
// in POSTS, and that with NATS gone a deletion answers 503 and leaves the
// post in place.
func TestDeleteThroughJetStream(t *testing.T) {
	e := newJetStreamAPI(t, true)
	ctx := context.Background()
	token := e.createUser(t, "alice")
	id := acceptedID(t, e.post(t, token, "", "regrettable"))
	keep := acceptedID(t, e.post(t, token, "", "keeper"))
	del := func(id string, ctx context.Context) *responseRecorder {
		return e.do(t, request{method: http.MethodDelete, path: "/v1/statuses/" + id, header: bearer(token), ctx: ctx})
	}
	if rec := del(id, ctx); rec.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body)
	}
	stream, err := e.js.Stream(ctx, fanout.PostsStream)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, fanout.PostsSubjectPrefix+"alice")
	if err != nil {
		t.Fatal(err)
	}
	retraction, err := starling.DecodePost(msg.Data)
	if err != nil || retraction.Retracts != id || retraction.ID == id || msg.Header.Get(jetstream.MsgIDHeader) != retraction.ID {
		t.Fatalf("last message %+v, %v; want the retraction of %s", retraction, err, id)
	}
	wantStreamMsgs(t, stream, 3)

	e.nats.Stop()
	testenv.Eventually(t, 5*time.Second, func() bool { return e.nc.Status() != nats.CONNECTED },
		"client still connected after the server stopped")
	reqCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	rec := del(keep, reqCtx)
	wantProblem(t, rec, http.StatusServiceUnavailable, typeBlank, "retry")
	if rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("Retry-After = %q", rec.Header().Get("Retry-After"))
	}
	if rec := e.do(t, request{method: http.MethodGet, path: "/v1/statuses/" + keep}); rec.Code != http.StatusOK {
		t.Fatalf("post gone after a failed delete: %d", rec.Code)
	}
}
