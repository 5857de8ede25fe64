package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"starling.dev/starling"
	"starling.dev/starling/fanout"
	"starling.dev/starling/internal/testenv"
)

// sseMsg is one event or comment read from a stream.
type sseMsg struct {
	event, id, data, comment string
}

// openStream connects to an event stream and returns its answer and the
// events and comments as they come; the channel closes when the stream
// ends. The connection is closed when the test ends.
func openStream(t *testing.T, url string, hdr map[string]string) (*http.Response, <-chan sseMsg) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan sseMsg, 64)
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		close(out)
		return resp, out
	}
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var m sseMsg
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if m != (sseMsg{}) {
					out <- m
				}
				m = sseMsg{}
			case strings.HasPrefix(line, ":"):
				out <- sseMsg{comment: strings.TrimSpace(line[1:])}
			default:
				k, v, _ := strings.Cut(line, ": ")
				switch k {
				case "event":
					m.event = v
				case "id":
					m.id = v
				case "data":
					m.data = v
				}
			}
		}
	}()
	return resp, out
}

// nextEvent returns the next event (not a comment) within 5 s.
func nextEvent(t *testing.T, ch <-chan sseMsg) sseMsg {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatal("the stream ended")
			}
			if m.comment == "" {
				return m
			}
		case <-deadline:
			t.Fatal("no event within 5 s")
		}
	}
}

// wantStatus checks that m is the status event of p.
func wantStatus(t *testing.T, m sseMsg, p starling.Post) {
	t.Helper()
	var s statusResponse
	if err := json.Unmarshal([]byte(m.data), &s); err != nil {
		t.Fatalf("event data %q: %v", m.data, err)
	}
	if m.event != "status" || m.id != p.ID || s != toStatus(p) {
		t.Fatalf("event %+v, want the status %s", m, p.ID)
	}
}

// eventsAPI is an API with a hub, served by a real HTTP server.
type eventsAPI struct {
	*apiEnv
	hub *Hub
	url string
}

func newEventsAPI(t *testing.T, acc Accounts, pub Publisher, hc HubConfig, edit func(*Config)) *eventsAPI {
	t.Helper()
	hub := NewHub(hc)
	e := newAPI(t, acc, pub, func(c *Config) {
		c.Hub = hub
		c.SSEHeartbeat = 100 * time.Millisecond
		if edit != nil {
			edit(c)
		}
	})
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)
	t.Cleanup(hub.Close) // before srv.Close: ends the streams it waits for
	return &eventsAPI{apiEnv: e, hub: hub, url: srv.URL}
}

func testPost(id, author, text string) starling.Post {
	return starling.Post{ID: id, Author: author, AuthorName: "Alice", Text: text, CreatedAt: testClock}
}

// TestUserEventsLive: a client gets the author's statuses and deletions as
// the hub reads them, nothing of other authors, and heartbeats between.
func TestUserEventsLive(t *testing.T) {
	e := newEventsAPI(t, newRedisStore(t), &fakePublisher{}, HubConfig{}, nil)
	e.createUser(t, "alice")
	resp, ch := openStream(t, e.url+"/v1/users/alice/events", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" ||
		resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("answer %d %v", resp.StatusCode, resp.Header)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return e.hub.Clients() == 1 }, "the client is not subscribed")
	e.hub.Publish(testPost("01JAAAAAAAAAAAAAAAAAAAAAAB", "bob", "not alice's"))
	p := testPost("01JAAAAAAAAAAAAAAAAAAAAAAC", "alice", "<b>hi</b>\nline two")
	e.hub.Publish(p)
	wantStatus(t, nextEvent(t, ch), p)
	e.hub.Publish(starling.Post{ID: "01JAAAAAAAAAAAAAAAAAAAAAAD", Author: "alice", Retracts: p.ID, CreatedAt: testClock})
	if m := nextEvent(t, ch); m.event != "delete" || m.data != `{"id":"`+p.ID+`"}` || m.id != "" {
		t.Fatalf("delete event %+v", m)
	}
	beats := 0
	testenv.Eventually(t, 5*time.Second, func() bool {
		select {
		case m := <-ch:
			if m.comment == "ping" {
				beats++
			}
		default:
		}
		return beats >= 2
	}, "no heartbeats")
}

// TestUserEventsResume: with Last-Event-ID the statuses after it come first,
// oldest first, from the history; a live copy of one of them is not sent
// twice.
func TestUserEventsResume(t *testing.T) {
	store := newRedisStore(t)
	e := newEventsAPI(t, store, &fakePublisher{}, HubConfig{}, nil)
	e.createUser(t, "alice")
	var posts []starling.Post
	for i, id := range []string{"01JAAAAAAAAAAAAAAAAAAAAAA1", "01JAAAAAAAAAAAAAAAAAAAAAA2", "01JAAAAAAAAAAAAAAAAAAAAAA3"} {
		p := testPost(id, "alice", "post "+string(rune('a'+i)))
		if err := store.RecordPost(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		posts = append(posts, p)
	}
	for _, tc := range []struct {
		name string
		url  string
		hdr  map[string]string
	}{
		{"header", "/v1/users/alice/events", map[string]string{"Last-Event-ID": posts[0].ID}},
		{"query", "/v1/users/alice/events?last_event_id=" + posts[0].ID, nil},
		{"header wins", "/v1/users/alice/events?last_event_id=" + posts[2].ID, map[string]string{"Last-Event-ID": posts[0].ID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ch := openStream(t, e.url+tc.url, tc.hdr)
			wantStatus(t, nextEvent(t, ch), posts[1])
			wantStatus(t, nextEvent(t, ch), posts[2])
			testenv.Eventually(t, 5*time.Second, func() bool { return e.hub.Clients() == 1 }, "not subscribed")
			e.hub.Publish(posts[2]) // read live too: not again
			next := testPost("01JAAAAAAAAAAAAAAAAAAAAAA4", "alice", "new")
			e.hub.Publish(next)
			wantStatus(t, nextEvent(t, ch), next)
		})
		testenv.Eventually(t, 5*time.Second, func() bool { return e.hub.Clients() == 0 }, "the client of %s stays", tc.name)
	}
}

// TestUserEventsRefusals: unknown authors, bad ids and clients over the
// bounds are refused with problems the document describes.
func TestUserEventsRefusals(t *testing.T) {
	e := newEventsAPI(t, newRedisStore(t), &fakePublisher{}, HubConfig{MaxClients: 2, MaxPerIP: 1}, nil)
	e.createUser(t, "alice")
	wantProblem(t, e.do(t, request{method: http.MethodGet, path: "/v1/users/nobody/events"}), http.StatusNotFound, typeBlank, "nobody")
	wantProblem(t, e.do(t, request{method: http.MethodGet, path: "/v1/users/alice/events",
		header: map[string]string{"Last-Event-ID": "nope"}}), http.StatusBadRequest, typeInvalidQuery, "ULID")
	wantProblem(t, e.do(t, request{method: http.MethodGet, path: "/v1/users/alice/events?last_event_id=x"}),
		http.StatusBadRequest, typeInvalidQuery, "ULID")

	// httptest's requests come from 192.0.2.1.
	held, err := e.hub.subscribe("alice", "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	rec := e.do(t, request{method: http.MethodGet, path: "/v1/users/alice/events"})
	wantProblem(t, rec, http.StatusTooManyRequests, typeBlank, "too many event streams")
	if rec.Header().Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if _, err := e.hub.subscribe("alice", "192.0.2.2"); err != nil {
		t.Fatal(err)
	}
	rec = e.doFrom(t, "198.51.100.7:5000", request{method: http.MethodGet, path: "/v1/users/alice/events"})
	wantProblem(t, rec, http.StatusServiceUnavailable, typeBlank, "no event stream")
	e.hub.unsubscribe(held)
	e.hub.unsubscribe(held) // twice changes nothing
	if n := e.hub.Clients(); n != 1 {
		t.Fatalf("%d clients, want 1", n)
	}
}

// TestUserEventsContract records a whole (short) stream and checks it
// against the document.
func TestUserEventsContract(t *testing.T) {
	store := newRedisStore(t)
	e := newEventsAPI(t, store, &fakePublisher{}, HubConfig{}, nil)
	e.createUser(t, "alice")
	p := testPost("01JAAAAAAAAAAAAAAAAAAAAAA2", "alice", "hello")
	if err := store.RecordPost(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	// The stream ends when this deadline does; the history is written long
	// before, even on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	rec := e.do(t, request{method: http.MethodGet, path: "/v1/users/alice/events?last_event_id=01JAAAAAAAAAAAAAAAAAAAAAA1", ctx: ctx})
	if !strings.HasPrefix(rec.Body.String(), "retry: 2000\n: connected\n\nevent: status\nid: "+p.ID+"\ndata: {") {
		t.Fatalf("stream %q", rec.Body)
	}
}

// TestHub covers the hub alone: fanning out by author, the latest posts,
// dropping a client that does not keep up, and closing.
func TestHub(t *testing.T) {
	h := NewHub(HubConfig{ClientBuffer: 2, Recent: 2})
	a1, _ := h.subscribe("alice", "ip1")
	a2, _ := h.subscribe("alice", "ip2")
	b, _ := h.subscribe("bob", "ip1")
	h.Publish(testPost("01JAAAAAAAAAAAAAAAAAAAAAA1", "alice", "one"))
	h.Publish(testPost("01JAAAAAAAAAAAAAAAAAAAAAA2", "alice", "two"))
	if len(a1.events) != 2 || len(a2.events) != 2 || len(b.events) != 0 {
		t.Fatalf("queued %d %d %d", len(a1.events), len(a2.events), len(b.events))
	}
	<-a1.events
	// A third post: a1 has room, a2 does not and is dropped.
	h.Publish(testPost("01JAAAAAAAAAAAAAAAAAAAAAA3", "alice", "three"))
	if !a2.gone || a1.gone || h.Clients() != 2 || h.dropped.Load() != 1 {
		t.Fatalf("after overflow: a1 gone %v, a2 gone %v, %d clients, %d dropped", a1.gone, a2.gone, h.Clients(), h.dropped.Load())
	}
	for range a2.events { // drains, then ends: the channel is closed
	}
	if got := h.Recent(); len(got) != 2 || got[0].ID != "01JAAAAAAAAAAAAAAAAAAAAAA3" || got[1].ID != "01JAAAAAAAAAAAAAAAAAAAAAA2" {
		t.Fatalf("recent %v", got)
	}
	h.Publish(starling.Post{ID: "01JAAAAAAAAAAAAAAAAAAAAAA4", Author: "alice", Retracts: "01JAAAAAAAAAAAAAAAAAAAAAA3"})
	if got := h.Recent(); len(got) != 1 || got[0].ID != "01JAAAAAAAAAAAAAAAAAAAAAA2" {
		t.Fatalf("recent after a retraction %v", got)
	}
	h.Close()
	if _, err := h.subscribe("alice", "ip3"); err != errHubClosed {
		t.Fatalf("subscribe after Close: %v", err)
	}
	if h.Clients() != 0 || !a1.gone || !b.gone {
		t.Fatal("Close left clients")
	}
}

// TestEventsFromJetStream runs the whole path on a real NATS: posts and a
// deletion made through the API reach a client by way of the POSTS stream
// and Hub.Follow; posts stored before Follow started only fill the latest
// posts.
func TestEventsFromJetStream(t *testing.T) {
	js, err := jetstream.New(testenv.StartNATS(t).Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := fanout.EnsureStreams(ctx, js, fanout.StreamLimits{}); err != nil {
		t.Fatal(err)
	}
	pub := fanout.NewPostPublisher(js)
	old := testPost("01JAAAAAAAAAAAAAAAAAAAAAA1", "alice", "before the process started")
	if _, err := pub.PublishPost(ctx, old); err != nil {
		t.Fatal(err)
	}
	// A real clock: the retraction's id must be newer than the post's.
	e := newEventsAPI(t, newRedisStore(t), pub, HubConfig{}, func(c *Config) { c.Now = time.Now })
	fctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.hub.Follow(fctx, js, FollowConfig{Stream: fanout.PostsStream}) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Follow: %v", err)
		}
	})
	testenv.Eventually(t, 5*time.Second, func() bool { return len(e.hub.Recent()) == 1 }, "the backfill did not arrive")

	token := e.createUser(t, "alice")
	_, ch := openStream(t, e.url+"/v1/users/alice/events", nil)
	testenv.Eventually(t, 5*time.Second, func() bool { return e.hub.Clients() == 1 }, "not subscribed")
	rec := e.post(t, token, "", "live <i>one</i>")
	var st statusResponse
	decode(t, rec, &st)
	m := nextEvent(t, ch)
	if m.event != "status" || m.id != st.ID || !strings.Contains(m.data, `"text":"live \u003ci\u003eone\u003c/i\u003e"`) {
		t.Fatalf("event %+v for %+v", m, st)
	}
	if rec := e.do(t, request{method: http.MethodDelete, path: "/v1/statuses/" + st.ID, header: bearer(token)}); rec.Code != http.StatusNoContent {
		t.Fatalf("delete = %d %s", rec.Code, rec.Body)
	}
	if m := nextEvent(t, ch); m.event != "delete" || m.data != `{"id":"`+st.ID+`"}` {
		t.Fatalf("event %+v", m)
	}
	if got := e.hub.Recent(); len(got) != 1 || got[0].ID != old.ID {
		t.Fatalf("recent %v, want only the old post", got)
	}
	// Ending Follow closes the hub, which ends the streams.
	stop()
	for range ch {
	}
}

// TestFollowBeforeTheStreamExists: the API may start before any process has
// made the streams. A post made meanwhile reaches a client who was already
// there, whether it was stored before the consumer started or after.
func TestFollowBeforeTheStreamExists(t *testing.T) {
	js, err := jetstream.New(testenv.StartNATS(t).Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	hub := NewHub(HubConfig{})
	c, err := hub.subscribe("alice", "ip")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hub.Follow(ctx, js, FollowConfig{Stream: fanout.PostsStream}) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Follow: %v", err)
		}
	}()
	if err := fanout.EnsureStreams(ctx, js, fanout.StreamLimits{}); err != nil {
		t.Fatal(err)
	}
	p := starling.Post{ID: "01JAAAAAAAAAAAAAAAAAAAAAA1", Author: "alice", Text: "early", CreatedAt: time.Now()}
	if _, err := fanout.NewPostPublisher(js).PublishPost(ctx, p); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-c.events:
		if ev.id != p.ID || ev.delete {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the post did not reach the client")
	}
}

// TestUserEventsOutliveServerTimeouts: the server's read and write timeouts
// are for ordinary requests; a stream outlives them.
func TestUserEventsOutliveServerTimeouts(t *testing.T) {
	hub := NewHub(HubConfig{})
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, func(c *Config) {
		c.Hub = hub
		c.SSEHeartbeat = 50 * time.Millisecond
	})
	e.createUser(t, "alice")
	srv := httptest.NewUnstartedServer(e.h)
	srv.Config.ReadTimeout = 200 * time.Millisecond
	srv.Config.WriteTimeout = 200 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(hub.Close)
	_, ch := openStream(t, srv.URL+"/v1/users/alice/events", nil)
	start := time.Now()
	for time.Since(start) < 4*srv.Config.WriteTimeout {
		if _, ok := <-ch; !ok {
			t.Fatalf("the stream ended after %s", time.Since(start))
		}
	}
	p := testPost("01JAAAAAAAAAAAAAAAAAAAAAA1", "alice", "still here")
	hub.Publish(p)
	wantStatus(t, nextEvent(t, ch), p)
}
