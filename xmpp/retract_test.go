package xmpp

import (
	"strings"
	"testing"

	"starling.dev/starling"
)

// TestRetractionPayload: a retraction carries the XEP-0424 retract of the
// post's origin-id, a fallback body, and the XEP-0334 store hint (so the
// server of an offline follower keeps it), and no Atom entry.
func TestRetractionPayload(t *testing.T) {
	p := starling.Post{ID: "01RETR", Author: "alice", Retracts: "01POST"}
	got := string(NewDelivery("mb.example", PayloadAtom, p).AppendTo(nil, "bob@example.org"))
	for _, want := range []string{
		`<retract xmlns="urn:xmpp:message-retract:1" id="01POST"/>`,
		`<store xmlns="urn:xmpp:hints"/>`,
		`<body>alice deleted an earlier post.</body>`,
		`<origin-id xmlns="urn:xmpp:sid:0" id="01RETR"/>`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("retraction lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, "no-store") || strings.Contains(got, "<entry") {
		t.Errorf("retraction carries a no-store hint or an Atom entry:\n%s", got)
	}
}
