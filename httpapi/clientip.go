package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ParseTrustedProxies reads a comma-separated list of CIDRs, the form of
// STARLING_TRUSTED_PROXIES; a bare address is a one-host prefix and ""
// is no proxy at all. A prefix that trusts every peer (0.0.0.0/0, ::/0) is
// an error.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil || a.Zone() != "" {
				return nil, fmt.Errorf("httpapi: trusted proxy %q is not a CIDR like 10.0.0.0/8 or fd00::/8", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, normalizePrefix(p))
	}
	return out, validateTrustedProxies(out)
}

// normalizePrefix masks p and writes an IPv4-mapped IPv6 prefix as the IPv4
// prefix it is, since addresses are compared unmapped.
func normalizePrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// normalizePrefixes normalizes a copy of ps, for callers that built their
// prefixes themselves.
func normalizePrefixes(ps []netip.Prefix) proxies {
	out := make(proxies, len(ps))
	for i, p := range ps {
		out[i] = normalizePrefix(p)
	}
	return out
}

// validateTrustedProxies refuses prefixes that are not usable and any that
// trusts every peer: then X-Forwarded-For would be the client's to choose.
func validateTrustedProxies(ps []netip.Prefix) error {
	for _, p := range ps {
		switch p = normalizePrefix(p); {
		case !p.IsValid():
			return errors.New("httpapi: TrustedProxies holds an invalid prefix")
		case p.Bits() == 0:
			return fmt.Errorf("httpapi: trusted proxy %s trusts every peer, so any client could choose its address", p)
		}
	}
	return nil
}

// proxies are the peers whose X-Forwarded-For is believed.
type proxies []netip.Prefix

func (ps proxies) trusts(a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP is the address a request comes from: the connection's peer,
// or, when the peer is a trusted proxy, the rightmost X-Forwarded-For entry
// that is not a trusted proxy. Only entries to the right of the client's
// were written by proxies we trust, so the walk stops at the first untrusted
// one, and at a malformed one (nothing to its left can be vouched for; the
// nearest hop read so far stands). Several X-Forwarded-For fields are one
// list, in order. The result is invalid when RemoteAddr is not an address
// (never so from net/http's server).
func (ps proxies) clientIP(r *http.Request) netip.Addr {
	client := peerAddr(r.RemoteAddr)
	if !client.IsValid() || !ps.trusts(client) {
		return client
	}
	fields := r.Header.Values("X-Forwarded-For")
	for i := len(fields) - 1; i >= 0; i-- {
		list := fields[i]
		for list != "" {
			var entry string
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				list, entry = list[:j], list[j+1:]
			} else {
				list, entry = "", list
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue // empty list elements are allowed and mean nothing
			}
			a, ok := parseForwarded(entry)
			if !ok {
				return client
			}
			client = a
			if !ps.trusts(a) {
				return client
			}
		}
	}
	return client
}

// peerAddr is the address of a RemoteAddr ("host:port", or a bare host).
func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.WithZone("").Unmap()
}

// parseForwarded reads one X-Forwarded-For entry: an address, possibly
// with a port ("192.0.2.1:443", "[2001:db8::1]:443") or in brackets.
func parseForwarded(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.WithZone("").Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().WithZone("").Unmap(), true
	}
	if inner, ok := strings.CutPrefix(s, "["); ok {
		if inner, ok = strings.CutSuffix(inner, "]"); ok {
			if a, err := netip.ParseAddr(inner); err == nil && a.Is6() {
				return a.WithZone("").Unmap(), true
			}
		}
	}
	return netip.Addr{}, false
}

// limitKey is the bucket of a client: its address, an IPv6 address's /64
// (what one host or site is usually given, so that walking through it does
// not earn fresh buckets), or the raw RemoteAddr when it is no address.
func limitKey(a netip.Addr, remote string) string {
	switch {
	case !a.IsValid():
		return remote
	case a.Is6():
		return netip.PrefixFrom(a, 64).Masked().String()
	}
	return a.String()
}

// clientKey carries the resolved client address in a request's context.
type clientKey struct{}

// resolveClient resolves the client's address once, for the request log
// and the rate limits.
func (s *server) resolveClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := s.proxies.clientIP(r)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientKey{}, a)))
	})
}

// clientAddr is the address resolveClient found (invalid if none).
func clientAddr(r *http.Request) netip.Addr {
	a, _ := r.Context().Value(clientKey{}).(netip.Addr)
	return a
}

// clientString is the client for the request log.
func clientString(r *http.Request) string {
	if a := clientAddr(r); a.IsValid() {
		return a.String()
	}
	return r.RemoteAddr
}
