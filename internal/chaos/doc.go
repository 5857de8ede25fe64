// Package chaos is the fault-injection suite: one post to many followers
// (JIDs at a counting sink component) through a real XMPP server, with the
// gateway and API as separate processes, an external nats-server and Redis
// with AOF, while follows and presence stream in; a fault is injected while
// the fanout stage runs or while only sends remain, and each row counts
// what the sink received: delivered, lost, duplicates and the longest stall.
//
// `go test ./internal/chaos` runs the short form (Prosody, 5,000 followers,
// rows in parallel) as part of `make test`; STARLING_CHAOS=long (`make
// chaos`) runs every row at 20,000 followers on Prosody and ejabberd, one
// after another. docs/RELIABILITY.md has the table and the command of each
// row.
package chaos
