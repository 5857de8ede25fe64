// Package pingrelay carries the answers to delivery pings between gateway
// replicas over core NATS (not JetStream: an answer lost on the way only
// delays its batch until the ping times out and the batch is sent again).
//
// A server that balances one component domain over several connections
// (ejabberd) hands each stanza for the domain to any of them, the answers
// to a gateway's own pings included. The gateway that receives an answer
// it is not waiting for publishes the ping's id on Subject; every gateway
// subscribes and settles the ping if it is its own. Ping ids are 128 random
// bits, so an id settles only the ping that carried it.
package pingrelay

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"
)

// Subject is where answers are relayed. It lies outside the subjects of
// the POSTS and DELIVERIES streams, so nothing stores these messages.
const Subject = "starling.pings.answers"

// maxID bounds the ids taken from the subject; ping ids are far shorter.
const maxID = 128

// Relay publishes forwarded answers and settles the relayed ones.
type Relay struct {
	nc  *nats.Conn
	log *slog.Logger
}

// New returns a relay over nc.
func New(nc *nats.Conn, log *slog.Logger) *Relay { return &Relay{nc: nc, log: log} }

// Forward publishes id to the other replicas. It does not block: the
// client buffers the message, also while it reconnects.
func (r *Relay) Forward(id string) {
	if err := r.nc.Publish(Subject, []byte(id)); err != nil {
		r.log.Warn("ping answer not relayed; its batch is sent again after the ping timeout", "err", err)
	}
}

// Serve hands every id relayed by any replica (this one included) to
// settle until ctx ends. settle runs on the subscription's goroutine and
// must return at once.
func (r *Relay) Serve(ctx context.Context, settle func(id string) bool) error {
	sub, err := r.nc.Subscribe(Subject, func(m *nats.Msg) {
		if len(m.Data) > 0 && len(m.Data) <= maxID {
			settle(string(m.Data))
		}
	})
	if err != nil {
		return fmt.Errorf("pingrelay: subscribe %s: %w", Subject, err)
	}
	// The subscription must reach the server before any answer is
	// forwarded to it.
	if err := r.nc.Flush(); err != nil {
		r.log.Warn("ping relay subscription not confirmed yet", "err", err)
	}
	<-ctx.Done()
	return sub.Unsubscribe()
}
