// Package e2e holds Starling's end-to-end tests: real Prosody, redis-server
// and NATS, the real gateway and API, and real XMPP clients logged in over
// c2s.
package e2e
