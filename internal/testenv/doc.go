// Package testenv starts the real servers Starling's tests run against:
// redis-server and Prosody as child processes on free loopback ports, and
// NATS with JetStream in-process (the real nats-server). Everything a test
// starts is stopped in t.Cleanup. A missing server binary fails the test with
// the command that installs it; nothing is skipped silently.
package testenv
