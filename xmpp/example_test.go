package xmpp_test

import (
	"fmt"
	"time"

	"starling.dev/starling"
	"starling.dev/starling/xmpp"
)

// A delivery is rendered once per post and addressed to each follower. By
// default it carries what clients show: the body and the origin-id.
func ExampleNewDelivery() {
	post := starling.Post{
		ID:        "01JEXAMPLE",
		Author:    "alice",
		Text:      "tea & cake",
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	d := xmpp.NewDelivery("microblog.example.org", xmpp.PayloadMinimal, post)
	fmt.Printf("%s\n", d.AppendTo(nil, "bob@example.org"))
	// Output:
	// <message type="chat" from="alice@microblog.example.org" to="bob@example.org" id="01JEXAMPLE"><body>tea &amp; cake</body><origin-id xmlns="urn:xmpp:sid:0" id="01JEXAMPLE"/></message>
}

// The atom profile adds the post as an Atom entry, for machine consumers.
func ExampleNewDelivery_atom() {
	post := starling.Post{
		ID:        "01JEXAMPLE",
		Author:    "alice",
		Text:      "tea & cake",
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	d := xmpp.NewDelivery("microblog.example.org", xmpp.PayloadAtom, post)
	fmt.Printf("%s\n", d.AppendTo(nil, "bob@example.org"))
	// Output:
	// <message type="chat" from="alice@microblog.example.org" to="bob@example.org" id="01JEXAMPLE"><body>tea &amp; cake</body><entry xmlns="http://www.w3.org/2005/Atom"><id>tag:microblog.example.org,2026-01-02:post:01JEXAMPLE</id><title>tea &amp; cake</title><published>2026-01-02T03:04:05Z</published><updated>2026-01-02T03:04:05Z</updated><author><name>alice</name><uri>xmpp:alice@microblog.example.org</uri></author><content type="text">tea &amp; cake</content></entry><origin-id xmlns="urn:xmpp:sid:0" id="01JEXAMPLE"/></message>
}

// A post that deletes another is delivered as an XEP-0424 retraction of it,
// whatever the payload profile.
func ExampleNewDelivery_retraction() {
	post := starling.Post{ID: "01JDELETE", Author: "alice", Retracts: "01JEXAMPLE"}
	d := xmpp.NewDelivery("microblog.example.org", xmpp.PayloadMinimal, post)
	fmt.Printf("%s\n", d.AppendTo(nil, "bob@example.org"))
	// Output:
	// <message type="chat" from="alice@microblog.example.org" to="bob@example.org" id="01JDELETE"><retract xmlns="urn:xmpp:message-retract:1" id="01JEXAMPLE"/><fallback xmlns="urn:xmpp:fallback:0" for="urn:xmpp:message-retract:1"/><body>alice deleted an earlier post.</body><store xmlns="urn:xmpp:hints"/><origin-id xmlns="urn:xmpp:sid:0" id="01JDELETE"/></message>
}

// Only Domain, Addr and Secret are required; every other field's zero value
// means its default.
func ExampleConfig_Validate() {
	cfg := xmpp.Config{Domain: "microblog.example.org", Addr: "127.0.0.1:5347"}
	fmt.Println(cfg.Validate())
	cfg.Secret = "from the environment"
	fmt.Println(cfg.Validate())
	cfg.MinBackoff, cfg.MaxBackoff = 10*time.Second, time.Second
	fmt.Println(cfg.Validate())
	cfg.MinBackoff, cfg.Payload = 0, "full"
	fmt.Println(cfg.Validate())
	// Output:
	// xmpp: Domain, Addr and Secret are required
	// <nil>
	// xmpp: MinBackoff 10s exceeds MaxBackoff 1s
	// xmpp: payload "full": use minimal or atom
}
