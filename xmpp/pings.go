package xmpp

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"
)

// pingPrefix marks the ids of the delivery round-trip pings.
const pingPrefix = "stl-ping-"

// pingIDBytes is how many random bytes follow the prefix. An answer confirms
// a chunk, so an id must not be guessable by anyone who might forge one, nor
// repeat across the replicas that share a component domain: an answer may
// reach another replica's connection and come back through the Relay.
const pingIDBytes = 16

// pings tracks delivery pings waiting for the server's answer.
type pings struct {
	mu      sync.Mutex
	waiting map[string]pending
}

// pending is one ping: the link it was written on, when it was
// registered, and what to call with its outcome.
type pending struct {
	l    *link
	at   time.Time
	done func(error)
}

func newPings() *pings { return &pings{waiting: make(map[string]pending)} }

// add registers a new ping to be written on l and returns its id; done is
// called once, with nil when the server answers it or the reason it never
// will.
func (p *pings) add(l *link, done func(error)) string {
	var b [pingIDBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	id := pingPrefix + hex.EncodeToString(b[:])
	p.mu.Lock()
	defer p.mu.Unlock()
	p.waiting[id] = pending{l: l, at: time.Now(), done: done}
	return id
}

// expire resolves with err every ping registered before deadline. An
// answer can be lost on a live link: a server that balances a domain over
// several connections may hand it to a replica that has just died. Such a
// ping must not hold its room in the pacer's window for ever, or every
// later chunk would wait for that room.
func (p *pings) expire(deadline time.Time, err error) int {
	var expired []func(error)
	p.mu.Lock()
	for id, w := range p.waiting {
		if w.at.Before(deadline) {
			expired = append(expired, w.done)
			delete(p.waiting, id)
		}
	}
	p.mu.Unlock()
	for _, done := range expired {
		done(err)
	}
	return len(expired)
}

// resolve calls the ping's done with err; it reports whether the id was
// waiting.
func (p *pings) resolve(id string, err error) bool {
	p.mu.Lock()
	w, ok := p.waiting[id]
	delete(p.waiting, id)
	p.mu.Unlock()
	if ok {
		w.done(err)
	}
	return ok
}

// failLink resolves with err every ping written on l (the link is gone, so
// their answers will never come).
func (p *pings) failLink(l *link, err error) {
	var failed []func(error)
	p.mu.Lock()
	for id, w := range p.waiting {
		if w.l == l {
			failed = append(failed, w.done)
			delete(p.waiting, id)
		}
	}
	p.mu.Unlock()
	for _, done := range failed {
		done(err)
	}
}
