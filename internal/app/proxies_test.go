package app

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseAPITrustedProxies(t *testing.T) {
	base := map[string]string{"STARLING_XMPP_DOMAIN": "microblog.localhost"}
	withEnv := func(v string) Env {
		m := map[string]string{"STARLING_TRUSTED_PROXIES": v}
		for k, v := range base {
			m[k] = v
		}
		return envOf(m)
	}
	none, err := ParseAPI(nil, envOf(base))
	if err != nil || len(none.TrustedProxies) != 0 {
		t.Fatalf("default: %v, %v; want no trusted proxy", none.TrustedProxies, err)
	}
	c, err := ParseAPI(nil, withEnv("10.0.0.0/8, fd00::/8,192.0.2.7"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.TrustedProxies); got != "[10.0.0.0/8 fd00::/8 192.0.2.7/32]" {
		t.Errorf("from the environment: %s", got)
	}
	c, err = ParseAPI([]string{"-trusted-proxies=172.16.0.0/12"}, withEnv("10.0.0.0/8"))
	if err != nil || fmt.Sprint(c.TrustedProxies) != "[172.16.0.0/12]" {
		t.Errorf("the flag wins over the environment: %v, %v", c.TrustedProxies, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "proxy.internal", "0.0.0.0/0"} {
		if _, err := ParseAPI(nil, withEnv(bad)); err == nil || !strings.Contains(err.Error(), "STARLING_TRUSTED_PROXIES") {
			t.Errorf("%q: error %v, want one naming STARLING_TRUSTED_PROXIES", bad, err)
		}
	}
}
