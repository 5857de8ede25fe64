package xmpp

import (
	"strconv"
	"sync"
)

// pingPrefix marks the ids of the delivery round-trip pings.
const pingPrefix = "stl-ping-"

// pings tracks delivery pings waiting for the server's answer.
type pings struct {
	mu      sync.Mutex
	next    uint64
	waiting map[string]chan error
}

func newPings() *pings { return &pings{waiting: make(map[string]chan error)} }

// add registers a new ping and returns its id and the channel its answer
// (nil for a result, an error otherwise) arrives on.
func (p *pings) add() (string, <-chan error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	id := pingPrefix + strconv.FormatUint(p.next, 36)
	ch := make(chan error, 1)
	p.waiting[id] = ch
	return id, ch
}

// answer resolves the ping id; it reports whether the id was one of ours.
func (p *pings) answer(id string, err error) bool {
	p.mu.Lock()
	ch, ok := p.waiting[id]
	delete(p.waiting, id)
	p.mu.Unlock()
	if ok {
		ch <- err
	}
	return ok
}

func (p *pings) drop(id string) {
	p.mu.Lock()
	delete(p.waiting, id)
	p.mu.Unlock()
}

// failAll resolves every waiting ping with err (the connection is gone).
func (p *pings) failAll(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, ch := range p.waiting {
		ch <- err
		delete(p.waiting, id)
	}
}
