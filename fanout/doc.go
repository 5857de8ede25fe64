// Package fanout is Starling's pipeline core. It owns the types that travel
// through NATS JetStream (Batch, which carries a starling.Post), the fanout stage that turns one post
// into delivery batches of at most BatchSize followers, and the send stage that
// hands batches to the XMPP component.
//
// The package imports none of its siblings. It declares the small interfaces
// it needs (FollowerPager, BatchSink, StanzaSender) and the subscribers and
// xmpp packages satisfy them implicitly.
package fanout
