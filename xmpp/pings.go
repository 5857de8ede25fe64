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
	waiting map[string]func(error)
}

func newPings() *pings { return &pings{waiting: make(map[string]func(error))} }

// add registers a new ping and returns its id; done is called once, with
// nil when the server answers it or the reason it never will.
func (p *pings) add(done func(error)) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	id := pingPrefix + strconv.FormatUint(p.next, 36)
	p.waiting[id] = done
	return id
}

// resolve calls the ping's done with err; it reports whether the id was
// waiting.
func (p *pings) resolve(id string, err error) bool {
	p.mu.Lock()
	done, ok := p.waiting[id]
	delete(p.waiting, id)
	p.mu.Unlock()
	if ok {
		done(err)
	}
	return ok
}

// failAll resolves every waiting ping with err (the connection is gone).
func (p *pings) failAll(err error) {
	p.mu.Lock()
	waiting := p.waiting
	p.waiting = make(map[string]func(error))
	p.mu.Unlock()
	for _, done := range waiting {
		done(err)
	}
}
