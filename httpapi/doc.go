// Package httpapi is Starling's REST API: a chi router that manages authors
// and their tokens, accepts and deletes posts, pages through an author's
// posts and followers, imports followers in bulk, and serves its own OpenAPI
// 3.1 document at /openapi.yaml (openapi.yaml, embedded).
//
// A post is acknowledged with 202 only after the Publisher has returned, that
// is after JetStream has stored it; when it cannot, the client gets 503 with
// Retry-After and may retry with the same Idempotency-Key, which can only ever
// repeat the first post. Deleting a post publishes its XEP-0424 retraction the
// same way and removes the post only once JetStream holds the retraction.
// Every error is an RFC 9457 application/problem+json document.
//
// Requests are rate limited per client IP and per bearer token (token
// buckets, 429 with Retry-After). Tokens are stored only as SHA-256 hashes;
// the admin token is compared in constant time; no token, path or query
// reaches a log line. The package's tests validate every request and answer
// they exchange against openapi.yaml.
//
// The package depends on small interfaces declared here (Users and Posts,
// together Accounts; Followers; Publisher), and among Starling's packages
// only on the domain package starling; internal/app wires in the accounts
// and subscribers stores and the JetStream publisher.
package httpapi
