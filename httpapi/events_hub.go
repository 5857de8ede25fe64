package httpapi

import (
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"

	"starling.dev/starling"
)

// Defaults of HubConfig, which STARLING_SSE_MAX_CLIENTS and
// STARLING_SSE_MAX_PER_IP default to.
const (
	DefaultSSEMaxClients = 10000
	DefaultSSEMaxPerIP   = 20
	defaultRecentPosts   = 20
	// defaultClientBuffer is how many events wait for one slow client
	// before it is dropped (it reconnects with Last-Event-ID and catches up
	// from the post history).
	defaultClientBuffer = 64
)

// Errors of Hub.subscribe.
var (
	errTooManyClients = errors.New("httpapi: too many event stream clients")
	errTooManyFromIP  = errors.New("httpapi: too many event stream clients from this address")
	errHubClosed      = errors.New("httpapi: event hub closed")
)

// HubConfig configures a Hub. Zero values mean the defaults.
type HubConfig struct {
	// MaxClients bounds the event stream clients of this process; zero
	// means DefaultSSEMaxClients.
	MaxClients int
	// MaxPerIP bounds the clients of one address (an IPv6 address's /64);
	// zero means DefaultSSEMaxPerIP.
	MaxPerIP int
	// Recent is how many posts across authors the hub remembers for the
	// landing page; zero means 20.
	Recent int
	// ClientBuffer is how many events may wait for one client before it is
	// dropped; zero means 64.
	ClientBuffer int
}

func (c HubConfig) withDefaults() HubConfig {
	if c.MaxClients <= 0 {
		c.MaxClients = DefaultSSEMaxClients
	}
	if c.MaxPerIP <= 0 {
		c.MaxPerIP = DefaultSSEMaxPerIP
	}
	if c.Recent <= 0 {
		c.Recent = defaultRecentPosts
	}
	if c.ClientBuffer <= 0 {
		c.ClientBuffer = defaultClientBuffer
	}
	return c
}

// Hub hands the posts and retractions this process reads from the stream
// of posts (see Hub.Follow) to its event stream clients, in memory: one
// stream consumer per process, however many clients. A client that does
// not keep up is dropped rather than waited for. The hub also remembers
// the latest posts across authors for the landing page. Safe for
// concurrent use.
type Hub struct {
	cfg HubConfig

	mu       sync.Mutex
	closed   bool
	byAuthor map[string]map[*eventClient]struct{}
	clients  int
	perIP    map[string]int
	recent   []starling.Post // oldest first, at most cfg.Recent

	received, dropped atomic.Int64
}

// NewHub returns a hub with no clients. Until Follow feeds it, its clients
// get the post history and heartbeats only.
func NewHub(cfg HubConfig) *Hub {
	return &Hub{
		cfg:      cfg.withDefaults(),
		byAuthor: map[string]map[*eventClient]struct{}{},
		perIP:    map[string]int{},
	}
}

// sseEvent is one event, rendered once for every client that gets it.
type sseEvent struct {
	// id is the status id of a status event, the deleted post's id of a
	// delete event.
	id     string
	delete bool
	frame  []byte // the event's lines, ready to write
}

// eventClient is one event stream connection.
type eventClient struct {
	author, ip string
	events     chan sseEvent // closed when the hub lets go of the client
	gone       bool          // events is closed; guarded by Hub.mu
}

// subscribe registers a client of author's events from the address ip.
func (h *Hub) subscribe(author, ip string) (*eventClient, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return nil, errHubClosed
	case h.clients >= h.cfg.MaxClients:
		return nil, errTooManyClients
	case h.perIP[ip] >= h.cfg.MaxPerIP:
		return nil, errTooManyFromIP
	}
	c := &eventClient{author: author, ip: ip, events: make(chan sseEvent, h.cfg.ClientBuffer)}
	set := h.byAuthor[author]
	if set == nil {
		set = map[*eventClient]struct{}{}
		h.byAuthor[author] = set
	}
	set[c] = struct{}{}
	h.clients++
	h.perIP[ip]++
	return c, nil
}

// unsubscribe lets go of a client; calling it again changes nothing.
func (h *Hub) unsubscribe(c *eventClient) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(c)
}

func (h *Hub) removeLocked(c *eventClient) {
	if c.gone {
		return
	}
	c.gone = true
	close(c.events)
	set := h.byAuthor[c.author]
	delete(set, c)
	if len(set) == 0 {
		delete(h.byAuthor, c.author)
	}
	h.clients--
	if h.perIP[c.ip]--; h.perIP[c.ip] <= 0 {
		delete(h.perIP, c.ip)
	}
}

// Publish hands a post read from the stream to the author's clients: a
// status event, or a delete event when the post is a retraction. A client
// whose buffer is full is dropped.
func (h *Hub) Publish(p starling.Post) {
	h.received.Add(1)
	ev := newEvent(p)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rememberLocked(p)
	for c := range h.byAuthor[p.Author] {
		select {
		case c.events <- ev:
		default:
			h.dropped.Add(1)
			h.removeLocked(c)
		}
	}
}

// remember keeps a post read while catching up (see Follow) for the
// landing page only: its clients saw it before they connected, if at all.
func (h *Hub) remember(p starling.Post) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rememberLocked(p)
}

func (h *Hub) rememberLocked(p starling.Post) {
	if p.Retracts != "" {
		for i, q := range h.recent {
			if q.ID == p.Retracts && q.Author == p.Author {
				h.recent = append(h.recent[:i], h.recent[i+1:]...)
				break
			}
		}
		return
	}
	for _, q := range h.recent {
		if q.ID == p.ID {
			return
		}
	}
	if len(h.recent) == h.cfg.Recent {
		h.recent = append(h.recent[:0], h.recent[1:]...)
	}
	h.recent = append(h.recent, p)
}

// Recent returns the latest posts this process has read from the stream,
// newest first.
func (h *Hub) Recent() []starling.Post {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]starling.Post, len(h.recent))
	for i, p := range h.recent {
		out[len(out)-1-i] = p
	}
	return out
}

// Close drops every client and refuses new ones: their handlers return, so
// the HTTP server's shutdown does not wait for them.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, set := range h.byAuthor {
		for c := range set {
			h.removeLocked(c)
		}
	}
}

// Clients is how many event stream clients the hub serves now.
func (h *Hub) Clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.clients
}

// newEvent renders the event of a post or retraction.
func newEvent(p starling.Post) sseEvent {
	if p.Retracts != "" {
		data, _ := json.Marshal(struct {
			ID string `json:"id"`
		}{p.Retracts})
		return sseEvent{id: p.Retracts, delete: true, frame: eventFrame("delete", "", data)}
	}
	data, _ := json.Marshal(toStatus(p))
	return sseEvent{id: p.ID, frame: eventFrame("status", p.ID, data)}
}

// eventFrame is one event in the text/event-stream format. data is JSON,
// which holds no line break, so it is one data line.
func eventFrame(name, id string, data []byte) []byte {
	b := make([]byte, 0, len(data)+len(id)+32)
	b = append(b, "event: "...)
	b = append(b, name...)
	b = append(b, '\n')
	if id != "" {
		b = append(b, "id: "...)
		b = append(b, id...)
		b = append(b, '\n')
	}
	b = append(b, "data: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}
