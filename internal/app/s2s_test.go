package app

import (
	"maps"
	"strings"
	"testing"
)

func TestParseGatewayS2S(t *testing.T) {
	base := map[string]string{"STARLING_XMPP_DOMAIN": "microblog.example.org", "STARLING_XMPP_MODE": "s2s", "STARLING_S2S_SECRET": "db"}
	with := func(kv ...string) map[string]string {
		m := maps.Clone(base)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	for _, c := range []struct {
		name string
		env  map[string]string
		err  string // "" for none
	}{
		{"with a certificate", with("STARLING_TLS_CERT", "/tls/cert.pem", "STARLING_TLS_KEY", "/tls/key.pem"), ""},
		{"insecure", with("STARLING_S2S_INSECURE", "true"), ""},
		{"no certificate", base, "STARLING_S2S_INSECURE=true"},
		{"certificate without key", with("STARLING_TLS_CERT", "/tls/cert.pem"), "go together"},
		{"no dialback secret", with("STARLING_S2S_SECRET", "", "STARLING_S2S_INSECURE", "true"), "STARLING_S2S_SECRET is required"},
		{"bad hosts", with("STARLING_S2S_INSECURE", "true", "STARLING_S2S_HOSTS", "localhost"), "STARLING_S2S_HOSTS"},
		{"bad mode", with("STARLING_XMPP_MODE", "bosh"), "STARLING_XMPP_MODE"},
		{"component needs its secret", with("STARLING_XMPP_MODE", "component"), "STARLING_XMPP_SECRET is required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseGateway(nil, envOf(c.env))
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("error %v, want one about %q", err, c.err)
			}
		})
	}
	cfg, err := ParseGateway(nil, envOf(with("STARLING_S2S_INSECURE", "true", "STARLING_S2S_HOSTS", "a.test=127.0.0.1:5269, B.test=[::1]:5270")))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.S2SAddr != ":5269" || cfg.S2SHosts["a.test"] != "127.0.0.1:5269" || cfg.S2SHosts["b.test"] != "[::1]:5270" || len(cfg.S2SHosts) != 2 {
		t.Fatalf("s2s settings %q %v", cfg.S2SAddr, cfg.S2SHosts)
	}
	if def, err := ParseGateway(nil, envOf(map[string]string{"STARLING_XMPP_DOMAIN": "m.example", "STARLING_XMPP_SECRET": "s"})); err != nil || def.XMPPMode != ModeComponent {
		t.Fatalf("default mode %q (%v)", def.XMPPMode, err)
	}
}
