package main

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"starling.dev/starling/internal/testenv"
)

// TestPostIsStoredBeforeThe202: a post answered 202 is in the stream, under
// its id as Nats-Msg-Id.
func TestPostIsStoredBeforeThe202(t *testing.T) {
	n := testenv.StartNATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", n.URL, slog.New(slog.DiscardHandler), func(a string) { addr <- a })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("minimalapi: %v", err)
		}
	})
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-done:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("minimalapi did not start")
	}
	resp, err := http.Post(base+"/v1/statuses", "application/json", strings.NewReader(`{"text":"hello"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
	js, err := jetstream.New(n.Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(context.Background(), streamName)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if id := m.Header.Get(jetstream.MsgIDHeader); id == "" || !strings.Contains(string(m.Data), `"id":"`+id+`"`) || !strings.Contains(string(m.Data), "hello") {
		t.Fatalf("stored %s with Nats-Msg-Id %q", m.Data, id)
	}
	if resp, err := http.Post(base+"/v1/statuses", "application/json", strings.NewReader(`{`)); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad JSON: %v %v", resp, err)
	}
}
