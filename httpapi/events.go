package httpapi

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"starling.dev/starling"
)

const (
	// defaultHeartbeat is how often an idle event stream gets a comment
	// line, so that proxies and the client see it alive.
	defaultHeartbeat = 15 * time.Second
	// eventWriteTimeout bounds one write to an event stream client; one
	// that does not read is dropped.
	eventWriteTimeout = 10 * time.Second
	// reconnectMillis is the reconnection delay the stream asks of
	// EventSource.
	reconnectMillis = 2000
	// maxResume is how many posts a reconnecting client is sent from the
	// history at most.
	maxResume = maxStatusPage
)

// userEvents handles GET /v1/users/{username}/events: the author's new
// statuses and deletions as Server-Sent Events, live from this process's
// hub. With Last-Event-ID (or the last_event_id query parameter, for a
// first connection), the statuses after that one are sent first from the
// post history.
func (s *server) userEvents(w http.ResponseWriter, r *http.Request) {
	username := chi.URLParam(r, "username")
	last, p := lastEventID(r)
	if p != nil {
		writeProblem(w, *p)
		return
	}
	if !s.userMustExist(w, r, username) {
		return
	}
	c, err := s.hub.subscribe(username, limitKey(clientAddr(r), r.RemoteAddr))
	switch {
	case errors.Is(err, errTooManyFromIP):
		w.Header().Set("Retry-After", "10")
		writeProblem(w, blank(http.StatusTooManyRequests, "too many event streams from this address"))
		return
	case err != nil:
		w.Header().Set("Retry-After", "10")
		writeProblem(w, blank(http.StatusServiceUnavailable, "no event stream can be opened right now"))
		return
	}
	defer s.hub.unsubscribe(c)
	s.streamEvents(w, r, c, last)
}

// streamEvents writes the stream until the client goes, the hub drops it or
// a write fails. Live events that arrive while the history is read wait in
// the client's buffer and are sent after it, less those already sent.
func (s *server) streamEvents(w http.ResponseWriter, r *http.Request, c *eventClient, last string) {
	rc := http.NewResponseController(w)
	// The server's read and write timeouts are for ordinary requests; a
	// read deadline running out would also end this one's context.
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	out := []byte("retry: " + strconv.Itoa(reconnectMillis) + "\n: connected\n\n")
	sent := map[string]bool{}
	if last != "" {
		posts, err := s.postsAfter(r, c.author, last)
		if err != nil {
			s.log.WarnContext(r.Context(), "httpapi: event stream history unavailable", "err", err)
		}
		for _, p := range posts {
			out = append(out, newEvent(p).frame...)
			sent[p.ID] = true
		}
	}
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write(out) {
		return
	}
	beat := time.NewTicker(s.cfg.SSEHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-c.events:
			if !ok {
				return // dropped (too slow) or shutting down; the client reconnects
			}
			if !ev.delete && sent[ev.id] {
				continue
			}
			if !write(ev.frame) {
				return
			}
		case <-beat.C:
			if !write([]byte(": ping\n\n")) {
				return
			}
		}
	}
}

// postsAfter returns the author's posts newer than the status id last,
// oldest first, at most maxResume of them.
func (s *server) postsAfter(r *http.Request, author, last string) ([]starling.Post, error) {
	posts, err := s.acc.Statuses(r.Context(), author, "", maxResume)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(posts, func(p starling.Post) bool { return p.ID <= last })
	if i >= 0 {
		posts = posts[:i]
	}
	slices.Reverse(posts)
	return posts, nil
}

// lastEventID is the status the client saw last: the Last-Event-ID header
// that EventSource sends when it reconnects, else the last_event_id query
// parameter a page gives for its first connection. Empty when neither.
func lastEventID(r *http.Request) (string, *problem) {
	id := r.Header.Get("Last-Event-ID")
	if id == "" {
		id = r.URL.Query().Get("last_event_id")
	}
	if id != "" && !statusIDRE.MatchString(id) {
		p := badQuery("Last-Event-ID and last_event_id must be a status id (a ULID)")
		return "", &p
	}
	return id, nil
}

// registerHubMetrics exposes the hub's state as the API's metrics.
func registerHubMetrics(reg prometheus.Registerer, h *Hub) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "starling_httpapi_sse_clients",
			Help: "Event stream clients connected to this process.",
		}, func() float64 { return float64(h.Clients()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "starling_httpapi_sse_dropped_total",
			Help: "Event stream clients dropped because they did not keep up.",
		}, func() float64 { return float64(h.dropped.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "starling_httpapi_live_posts_total",
			Help: "Posts and retractions this process read from the stream of posts for live pages.",
		}, func() float64 { return float64(h.received.Load()) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
