package xmpp

import "testing"

func TestCommandLimiterWarnsOnceThenStaysQuiet(t *testing.T) {
	l := newLimiter(0.001, 2) // no refill during the test
	want := []verdict{allowed, allowed, slowDown, quiet, quiet}
	for i, v := range want {
		if got := l.take("bob@example.org"); got != v {
			t.Fatalf("command %d: %v, want %v", i, got, v)
		}
	}
	if !l.allow("carol@example.org") {
		t.Fatal("another JID shares bob's allowance")
	}
	if l.allow("bob@example.org") {
		t.Fatal("bob allowed past his burst")
	}
}
