package app

import (
	"strings"
	"testing"
)

// TestPayloadSetting: STARLING_PAYLOAD defaults to minimal, takes atom by
// variable or flag, and the gateway refuses to start with anything else.
func TestPayloadSetting(t *testing.T) {
	base := map[string]string{"STARLING_XMPP_DOMAIN": "microblog.localhost", "STARLING_XMPP_SECRET": "s"}
	with := func(k, v string) map[string]string {
		env := map[string]string{k: v}
		for k, v := range base {
			env[k] = v
		}
		return env
	}
	if c, err := ParseGateway(nil, envOf(base)); err != nil || c.Payload != "minimal" {
		t.Errorf("default payload %q, %v; want minimal", c.Payload, err)
	}
	if c, err := ParseGateway(nil, envOf(with("STARLING_PAYLOAD", "atom"))); err != nil || c.Payload != "atom" {
		t.Errorf("STARLING_PAYLOAD=atom: %q, %v", c.Payload, err)
	}
	if c, err := ParseGateway([]string{"-payload=atom"}, envOf(base)); err != nil || c.Payload != "atom" {
		t.Errorf("-payload=atom: %q, %v", c.Payload, err)
	}
	for _, bad := range []string{"full", "ATOM", ""} {
		_, err := ParseGateway(nil, envOf(with("STARLING_PAYLOAD", bad)))
		if err == nil || !strings.Contains(err.Error(), "STARLING_PAYLOAD") || !strings.Contains(err.Error(), "use minimal or atom") {
			t.Errorf("STARLING_PAYLOAD=%q: %v, want a refusal naming the setting and its values", bad, err)
		}
	}
}
