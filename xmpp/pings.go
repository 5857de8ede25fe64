package xmpp

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
)

// pingPrefix marks the ids of the delivery round-trip pings.
const pingPrefix = "stl-ping-"

// pingIDBytes is how many random bytes follow the prefix. An answer confirms
// a chunk, so an id must not be guessable by anyone who might forge one, nor
// repeat across the replicas that share a component domain.
const pingIDBytes = 16

// pings tracks delivery pings waiting for the server's answer.
type pings struct {
	mu      sync.Mutex
	waiting map[string]func(error)
}

func newPings() *pings { return &pings{waiting: make(map[string]func(error))} }

// add registers a new ping and returns its id; done is called once, with
// nil when the server answers it or the reason it never will.
func (p *pings) add(done func(error)) string {
	var b [pingIDBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	id := pingPrefix + hex.EncodeToString(b[:])
	p.mu.Lock()
	defer p.mu.Unlock()
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
