package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestParseTrustedProxies(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    string // the prefixes, joined by spaces
		wantErr bool
	}{
		{in: "", want: ""},
		{in: " , ", want: ""},
		{in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{in: "10.1.2.3/8, 192.0.2.7", want: "10.0.0.0/8 192.0.2.7/32"},
		{in: "fd00::/8,2001:db8::1", want: "fd00::/8 2001:db8::1/128"},
		{in: "::ffff:10.0.0.0/104", want: "10.0.0.0/8"},
		{in: "10.0.0.0/33", wantErr: true},
		{in: "proxy.internal", wantErr: true},
		{in: "fe80::1%eth0", wantErr: true},
		{in: "0.0.0.0/0", wantErr: true},
		{in: "10.0.0.0/8,::/0", wantErr: true},
		{in: "::ffff:0.0.0.0/96", wantErr: true},
	} {
		got, err := ParseTrustedProxies(c.in)
		if (err != nil) != c.wantErr {
			t.Errorf("ParseTrustedProxies(%q): error %v, want error %v", c.in, err, c.wantErr)
			continue
		}
		var s []string
		for _, p := range got {
			s = append(s, p.String())
		}
		if !c.wantErr && strings.Join(s, " ") != c.want {
			t.Errorf("ParseTrustedProxies(%q) = %v, want %s", c.in, s, c.want)
		}
	}
}

func TestConfigValidateTrustedProxies(t *testing.T) {
	for _, ps := range [][]netip.Prefix{
		{netip.Prefix{}},
		{netip.MustParsePrefix("0.0.0.0/0")},
		{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::/0")},
	} {
		if err := (Config{Domain: testDomain, TrustedProxies: ps}).Validate(); err == nil {
			t.Errorf("%v accepted", ps)
		}
	}
	ok := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	if err := (Config{Domain: testDomain, TrustedProxies: ok}).Validate(); err != nil {
		t.Errorf("%v refused: %v", ok, err)
	}
}

func TestClientIP(t *testing.T) {
	trusted, err := ParseTrustedProxies("10.0.0.0/8, 192.168.1.1, fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		remote string
		xff    []string // one X-Forwarded-For field each
		want   string   // "" for no address
	}{
		{name: "direct, no header", remote: "203.0.113.5:4000", want: "203.0.113.5"},
		{name: "untrusted peer's header ignored", remote: "203.0.113.5:4000", xff: []string{"198.51.100.1"}, want: "203.0.113.5"},
		{name: "untrusted peer inside a trusted-looking chain", remote: "203.0.113.5:4000", xff: []string{"198.51.100.1, 10.0.0.2"}, want: "203.0.113.5"},
		{name: "trusted peer, no header", remote: "10.0.0.1:4000", want: "10.0.0.1"},
		{name: "trusted peer", remote: "10.0.0.1:4000", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "one-host prefix", remote: "192.168.1.1:4000", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "neighbour of a one-host prefix", remote: "192.168.1.2:4000", xff: []string{"198.51.100.1"}, want: "192.168.1.2"},
		{name: "spoofed leftmost entries", remote: "10.0.0.1:4000", xff: []string{"1.2.3.4, 5.6.7.8, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "spoofed trusted-looking leftmost", remote: "10.0.0.1:4000", xff: []string{"10.9.9.9, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "chain of trusted proxies", remote: "10.0.0.1:4000", xff: []string{"6.6.6.6, 198.51.100.1, 10.0.0.3, 10.0.0.2"}, want: "198.51.100.1"},
		{name: "everything trusted: the farthest hop", remote: "10.0.0.1:4000", xff: []string{"10.0.0.3, 10.0.0.2"}, want: "10.0.0.3"},
		{name: "several fields are one list", remote: "10.0.0.1:4000", xff: []string{"6.6.6.6", "198.51.100.1", "10.0.0.2"}, want: "198.51.100.1"},
		{name: "several fields, spoof in the first", remote: "10.0.0.1:4000", xff: []string{"6.6.6.6, 7.7.7.7", "198.51.100.1"}, want: "198.51.100.1"},
		{name: "empty elements skipped", remote: "10.0.0.1:4000", xff: []string{"198.51.100.1,, ", " ,10.0.0.2"}, want: "198.51.100.1"},
		{name: "empty field", remote: "10.0.0.1:4000", xff: []string{""}, want: "10.0.0.1"},
		{name: "malformed rightmost: the peer", remote: "10.0.0.1:4000", xff: []string{"198.51.100.1, unknown"}, want: "10.0.0.1"},
		{name: "malformed behind a trusted hop: that hop", remote: "10.0.0.1:4000", xff: []string{"garbage, 10.0.0.7"}, want: "10.0.0.7"},
		{name: "malformed left of the client is never read", remote: "10.0.0.1:4000", xff: []string{"not-an-ip, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "obfuscated identifier", remote: "10.0.0.1:4000", xff: []string{"_hidden"}, want: "10.0.0.1"},
		{name: "half bracket is malformed", remote: "10.0.0.1:4000", xff: []string{"[2001:db8::1"}, want: "10.0.0.1"},
		{name: "IPv4 in brackets is malformed", remote: "10.0.0.1:4000", xff: []string{"[198.51.100.1]"}, want: "10.0.0.1"},
		{name: "CIDR is malformed", remote: "10.0.0.1:4000", xff: []string{"198.51.100.0/24"}, want: "10.0.0.1"},
		{name: "IPv4 with port", remote: "10.0.0.1:4000", xff: []string{"198.51.100.1:5555"}, want: "198.51.100.1"},
		{name: "IPv6", remote: "10.0.0.1:4000", xff: []string{"2001:db8::1"}, want: "2001:db8::1"},
		{name: "IPv6 in brackets", remote: "10.0.0.1:4000", xff: []string{"[2001:db8::1]"}, want: "2001:db8::1"},
		{name: "IPv6 with port", remote: "10.0.0.1:4000", xff: []string{"[2001:db8::1]:443"}, want: "2001:db8::1"},
		{name: "IPv6 with zone", remote: "10.0.0.1:4000", xff: []string{"fe80::1%eth0"}, want: "fe80::1"},
		{name: "IPv4-mapped entry", remote: "10.0.0.1:4000", xff: []string{"::ffff:198.51.100.1"}, want: "198.51.100.1"},
		{name: "IPv6 trusted peer", remote: "[fd00::1]:4000", xff: []string{"198.51.100.1, fd00::2"}, want: "198.51.100.1"},
		{name: "IPv6 untrusted peer", remote: "[2001:db8::9]:4000", xff: []string{"198.51.100.1"}, want: "2001:db8::9"},
		{name: "IPv4-mapped trusted peer", remote: "[::ffff:10.0.0.1]:4000", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "IPv4-mapped trusted hop", remote: "10.0.0.1:4000", xff: []string{"6.6.6.6, ::ffff:10.0.0.2"}, want: "6.6.6.6"},
		{name: "peer without port", remote: "10.0.0.1", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "peer not an address", remote: "pipe", xff: []string{"198.51.100.1"}, want: ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = c.remote
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			got := proxies(trusted).clientIP(r)
			if c.want == "" {
				if got.IsValid() {
					t.Fatalf("clientIP = %s, want none", got)
				}
				return
			}
			if got.String() != c.want {
				t.Fatalf("clientIP = %s, want %s", got, c.want)
			}
		})
	}
}

func TestClientIPNoProxies(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.0.0.1:4000"
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	if got := proxies(nil).clientIP(r); got.String() != "10.0.0.1" {
		t.Fatalf("clientIP = %s with no trusted proxies", got)
	}
}

func TestLimitKey(t *testing.T) {
	for _, c := range []struct{ addr, remote, want string }{
		{addr: "198.51.100.1", want: "198.51.100.1"},
		{addr: "2001:db8:1:2:3:4:5:6", want: "2001:db8:1:2::/64"},
		{addr: "2001:db8:1:2:ffff::1", want: "2001:db8:1:2::/64"},
		{addr: "", remote: "pipe", want: "pipe"},
	} {
		var a netip.Addr
		if c.addr != "" {
			a = netip.MustParseAddr(c.addr)
		}
		if got := limitKey(a, c.remote); got != c.want {
			t.Errorf("limitKey(%s, %q) = %q, want %q", c.addr, c.remote, got, c.want)
		}
	}
}

// The request log names the client as resolved, and the per-IP limit keys
// on it: behind a trusted proxy two clients have two buckets, and a client
// cannot get a fresh one by forging the header's leftmost entries.
func TestForwardedClientThroughHandler(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, func(c *Config) {
		c.RateLimits = RateLimits{IPPerSecond: 0.001, IPBurst: 2}
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	get := func(peer, xff string) *responseRecorder {
		return e.doFrom(t, peer, request{method: http.MethodGet, path: "/v1/users/nobody",
			header: map[string]string{"X-Forwarded-For": xff}})
	}
	for i, xff := range []string{"198.51.100.1", "1.1.1.1, 198.51.100.1"} {
		if rec := get("10.0.0.1:1", xff); rec.Code != http.StatusNotFound {
			t.Fatalf("request %d within the burst: %d", i, rec.Code)
		}
	}
	// A forged leftmost entry does not make another client.
	wantProblem(t, get("10.0.0.1:1", "2.2.2.2, 198.51.100.1"), 429, typeBlank, "too many requests from this address")
	// Another client behind the same proxy has its own bucket.
	if rec := get("10.0.0.1:1", "198.51.100.2"); rec.Code != http.StatusNotFound {
		t.Fatalf("second client behind the proxy: %d", rec.Code)
	}
	// An untrusted peer cannot claim to be someone else.
	for range 2 {
		get("203.0.113.9:1", "198.51.100.3")
	}
	wantProblem(t, get("203.0.113.9:1", "198.51.100.4"), 429, typeBlank, "too many requests from this address")

	seen := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var rec struct {
			Msg      string `json:"msg"`
			ClientIP string `json:"client_ip"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Msg == "http request" {
			seen[rec.ClientIP]++
		}
	}
	want := map[string]int{"198.51.100.1": 3, "198.51.100.2": 1, "203.0.113.9": 3}
	for ip, n := range want {
		if seen[ip] != n {
			t.Errorf("log: %d requests from %s, want %d (all: %v)", seen[ip], ip, n, seen)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("log names clients %v, want %v", seen, want)
	}
}
