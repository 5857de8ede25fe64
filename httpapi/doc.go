// Package httpapi is Starling's REST API: a chi router that creates authors,
// accepts their posts and hands each post to JetStream before answering.
//
// A post is acknowledged with 202 only after the Publisher has returned, that
// is after JetStream has stored it; when it cannot, the client gets 503 with
// Retry-After and may retry with the same Idempotency-Key, which can only ever
// repeat the first post. Every error is an RFC 9457 application/problem+json
// document.
//
// The package depends on two small interfaces declared here, Accounts and
// Publisher, and on nothing but fanout among Starling's packages; cmd/api
// wires in the Redis store and the JetStream publisher.
package httpapi
