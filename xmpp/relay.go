package xmpp

// Relay carries the answers to delivery pings between the gateways that
// share a component domain. A server that balances the domain's stanzas
// over several connections (ejabberd) may hand the answer to one gateway's
// ping to another gateway's connection: the one that receives an answer it
// is not waiting for passes its id to Forward, and every replica hands the
// ids forwarded to it to Component.Settle. Ping ids are random, so an id
// settles only the ping that carried it.
type Relay interface {
	// Forward passes the id of an answer this gateway is not waiting for
	// to the other replicas. It must not block: it runs on the stream's
	// reader.
	Forward(id string)
}

// Option configures a Component beyond its Config. New applies the
// options twice: first to a bare Component, to learn the mode (see
// WithFederation), then to the one it returns; an option must only set
// fields, and cope with a Component that has nothing else set.
type Option func(*Component)

// WithRelay makes the component forward the ping answers that are not its
// own through r.
func WithRelay(r Relay) Option { return func(c *Component) { c.relay = r } }

// Settle confirms the delivery ping id, as if its answer had arrived on one
// of this component's connections, and reports whether this component was
// waiting for it. It is how answers forwarded by other replicas come in.
func (c *Component) Settle(id string) bool {
	if c.pings.resolve(id, nil) {
		c.metrics.relayed()
		return true
	}
	return false
}

// answered settles a ping answer that arrived on a connection: it is this
// component's, or it is forwarded.
func (c *Component) answered(id string) {
	if c.pings.resolve(id, nil) || c.relay == nil {
		return
	}
	c.relay.Forward(id)
	c.metrics.forwarded()
}
