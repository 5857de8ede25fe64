// Package fanout is Starling's pipeline. It owns the type that travels
// through NATS JetStream between the stages (Batch, which carries a
// starling.Post), the fanout stage that turns one post into delivery batches
// of at most BatchSize followers, and the send stage that hands batches to
// the XMPP component.
//
// The fanout stage walks an author's followers in JID order and saves its
// progress (the last JID walked, the next page) once each page's batch is
// stored, so a retried fanout resumes where the last attempt stopped. The
// send stage skips the batches of a post deleted meanwhile, and a
// retraction waits until no batch of its post is being sent, so it never
// overtakes the post.
//
// Pipeline runs both stages on durable JetStream consumers. A failed message
// comes back after a growing delay; one that does not decode, or that fails
// every attempt (ConsumerConfig.PostMaxDeliver, BatchMaxDeliver), is copied
// with its origin and last error in headers to the DEADLETTER stream
// (subjects starling.dead.<stream>, kept 14 days) and terminated, so it
// neither blocks the messages behind it nor vanishes unrecorded. A post older
// than ConsumerConfig.MaxLag is recorded but not delivered. On shutdown the
// pipeline stops pulling, lets running handlers finish within a grace
// period, and releases everything else at once for another gateway.
//
// With WithAudience a post also reaches whoever tracks one of its words and
// the verified JIDs of the users it mentions (MatchKeys, Mentions), merged
// into the same walk, so into the same pages, batches and lanes, each JID
// once.
//
// The package imports only the domain package. It declares the small
// interfaces it needs (FollowerPager, AudiencePager, MentionStore,
// BatchSink, StanzaSender, PostRecorder, ProgressStore, RetractionChecker)
// and the subscribers, accounts and xmpp packages satisfy them implicitly.
package fanout
