package xmpp

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
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

// pending is one ping: the link it was written on (in s2s mode, the
// outbound stream), the domain whose answer alone confirms it (s2s mode;
// empty in component mode, where the reader checks the sender), when it
// was registered, and what to call with its outcome.
type pending struct {
	on   any
	from string
	at   time.Time
	done func(error)
}

func newPings() *pings { return &pings{waiting: make(map[string]pending)} }

// add registers a new ping to be written on (a link, or an s2s stream) and
// returns its id; done is called once, with nil when the server answers it
// or the reason it never will.
func (p *pings) add(on any, done func(error)) string { return p.addFrom(on, "", done) }

// addFrom is add for a ping that only an answer from the domain from
// confirms (s2s mode: the remote server the ping went to).
func (p *pings) addFrom(on any, from string, done func(error)) string {
	var b [pingIDBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	id := pingPrefix + hex.EncodeToString(b[:])
	p.mu.Lock()
	defer p.mu.Unlock()
	p.waiting[id] = pending{on: on, from: from, at: time.Now(), done: done}
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

// settleFrom confirms ping id with an answer from the domain from, if the
// ping is waiting for that domain's answer. It reports whether the id is
// waiting here at all: an answer from the wrong domain is ignored, while
// one this gateway is not waiting for may be another replica's.
func (p *pings) settleFrom(id, from string) (waiting bool) {
	p.mu.Lock()
	w, ok := p.waiting[id]
	match := ok && strings.EqualFold(w.from, from)
	if match {
		delete(p.waiting, id)
	}
	p.mu.Unlock()
	if match {
		w.done(nil)
	}
	return ok
}

// failLink resolves with err every ping written on (a link, or an s2s
// stream): it is gone, so their answers will never come.
func (p *pings) failLink(on any, err error) {
	var failed []func(error)
	p.mu.Lock()
	for id, w := range p.waiting {
		if w.on == on {
			failed = append(failed, w.done)
			delete(p.waiting, id)
		}
	}
	p.mu.Unlock()
	for _, done := range failed {
		done(err)
	}
}
