package stack_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/internal/testenv/stack"
)

// The stack in separate-process mode (make run's and the bench's): the
// binaries built from ./cmd, a post reaching a real client, and a gateway
// restart.
func TestStackProcesses(t *testing.T) {
	s := stack.StartStack(t, stack.Options{Processes: true, LogLevel: "info"})
	tok := s.CreateUser(t, "alice", "Alice")
	bob := s.Client(t, "bob")
	if m := bob.Ask(t, s.Server.ComponentDomain, "follow alice"); !strings.Contains(m.Body, "alice") {
		t.Fatalf("follow reply: %q", m.Body)
	}
	post := func(text string) {
		t.Helper()
		st := s.Post(t, tok, text)
		if m := bob.Next(t, 10*time.Second); m.Body != text || m.OriginID != st.ID || m.From != s.AuthorJID("alice") {
			t.Fatalf("delivery %+v, want %q (%s) from %s", m, text, st.ID, s.AuthorJID("alice"))
		}
	}
	post("hello from a separate process")
	// The batch is acknowledged once the server answers its ping, just
	// after bob has the message; a gateway stopped before that leaves it to
	// JetStream's ack wait. Wait for the ack, so the restart is between posts.
	s.Drained(t, 10*time.Second)
	s.RestartGateway(t)
	post("hello after a restart")
	s.Drained(t, 10*time.Second)
}

// A counting sink stands in for many followers, in-process mode.
func TestStackSink(t *testing.T) {
	const domain, n = "sink.localhost", 500
	s := stack.StartStack(t, stack.Options{Sinks: []string{domain}, LogLevel: "info"})
	tok := s.CreateUser(t, "carol", "Carol")
	jids := make([]string, n)
	for i := range jids {
		jids[i] = fmt.Sprintf("f%d@%s", i, domain)
	}
	if _, err := s.Graph.AddFollowers(context.Background(), "carol", jids); err != nil {
		t.Fatal(err)
	}
	s.Post(t, tok, "to the sink")
	if _, err := s.Sinks[domain].Scan.Await(testenv.SinkMessages, n, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	s.Drained(t, 10*time.Second)
	if got := s.Sinks[domain].Count(); got != n {
		t.Fatalf("sink counted %d messages, want %d", got, n)
	}
}
