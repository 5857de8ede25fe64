// Package testenv starts the real servers Starling's tests run against:
// redis-server and Prosody or ejabberd as child processes on free loopback
// ports, and NATS with JetStream in-process (the real nats-server).
// Everything a test starts is stopped in t.Cleanup. A missing server binary
// fails the test with the command that installs it; nothing is skipped
// silently.
//
// StartStack puts the whole system together once for everyone: the
// end-to-end tests, the bench tool and make run (internal/run). It runs the
// gateway and the API in this process (app.RunGateway, app.RunAPI) or, with
// Options.Processes, as separate processes built from ./cmd. Sink (with
// Scanner) is the one counting XEP-0114 component that tests and the bench
// use to stand in for many followers. The functions take the small TB
// interface, so the bench and make run use them without a *testing.T.
package testenv
