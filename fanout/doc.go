// Package fanout is Starling's pipeline core. It owns the types that travel
// through NATS JetStream (Batch, which carries a starling.Post), the fanout stage that turns one post
// into delivery batches of at most BatchSize followers, and the send stage that
// hands batches to the XMPP component.
//
// Pipeline runs both stages on durable JetStream consumers. A failed message
// comes back after a growing delay; one that does not decode, or that fails
// every attempt (ConsumerConfig.PostMaxDeliver, BatchMaxDeliver), is copied
// with its origin and last error in headers to the DEADLETTER stream
// (subjects starling.dead.<stream>, kept 14 days) and terminated, so it
// neither blocks the messages behind it nor vanishes unrecorded.
//
// The package imports none of its siblings. It declares the small interfaces
// it needs (FollowerPager, BatchSink, StanzaSender) and the subscribers and
// xmpp packages satisfy them implicitly.
package fanout
