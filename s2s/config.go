package s2s

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
)

// Config configures a Server. Each field says what its zero value means;
// the defaults live in defaults, and only there.
type Config struct {
	// Domain is the XMPP domain this server is, e.g.
	// microblog.example.org. Required.
	Domain string
	// Addr is where remote servers connect (host:port); empty means
	// ":5269". Port 0 picks a free port (see Server.Addr).
	Addr string
	// Secret keys the dialback keys (dialback.Key); every replica of the
	// domain must have the same. Required.
	Secret string
	// TLS holds this server's certificate. With it, STARTTLS is offered
	// to remote servers and the certificate is presented as a client
	// certificate on outbound streams. nil offers no TLS, which is only
	// allowed with Insecure; outbound streams still use STARTTLS when the
	// peer offers it. Peers' certificates are not checked: dialback is
	// what authenticates them, as with Prosody's s2s_secure_auth = false.
	TLS *tls.Config
	// Insecure allows streams without TLS. Without it, a peer that does
	// not use TLS is refused, in both directions.
	Insecure bool
	// Hosts maps domains to the host:port to reach them at, before DNS
	// (tests, private networks).
	Hosts map[string]string
	// Resolver finds remote servers (SRV _xmpp-server._tcp, then A and
	// AAAA); nil means the system's.
	Resolver *net.Resolver
	// DialTimeout bounds opening an outbound stream: connecting, TLS and
	// dialback; and the verification of a remote server's key. Zero means
	// 15 s.
	DialTimeout time.Duration
	// IdleTimeout closes an outbound stream nothing was written on for
	// that long; zero means 5 minutes.
	IdleTimeout time.Duration
	// ReadTimeout closes an inbound stream that sent nothing, not even a
	// whitespace keepalive, for that long; zero means 20 minutes (remote
	// servers send keepalives every few minutes).
	ReadTimeout time.Duration
	// WriteTimeout bounds one write; zero means 10 s.
	WriteTimeout time.Duration
	// MinBackoff is how long a domain that could not be reached is not
	// tried again; it doubles with each failure in a row up to
	// MaxBackoff. A stream the domain opens to us ends the wait at once.
	// Zero means 1 s.
	MinBackoff time.Duration
	// MaxBackoff caps the wait; zero means 5 minutes, or MinBackoff when
	// that is longer.
	MaxBackoff time.Duration
	// QueueSize bounds the stanzas waiting for one domain's stream
	// (Send); zero means 1024.
	QueueSize int
	// MaxStanza bounds one element a remote server sends, in bytes; zero
	// means 512 KiB.
	MaxStanza int
	// MaxInbound bounds the inbound streams open at once; zero means 4096.
	MaxInbound int
}

var defaults = Config{
	Addr:         ":5269",
	DialTimeout:  15 * time.Second,
	IdleTimeout:  5 * time.Minute,
	ReadTimeout:  20 * time.Minute,
	WriteTimeout: 10 * time.Second,
	MinBackoff:   time.Second,
	MaxBackoff:   5 * time.Minute,
	QueueSize:    1024,
	MaxStanza:    512 << 10,
	MaxInbound:   4096,
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if c.Domain == "" || c.Secret == "" {
		return errors.New("s2s: Domain and Secret are required")
	}
	d, err := jid.Parse(c.Domain)
	if err != nil || d.Localpart() != "" || d.Resourcepart() != "" {
		return fmt.Errorf("s2s: domain %q is not a domain", c.Domain)
	}
	if c.TLS == nil && !c.Insecure {
		return errors.New("s2s: without a certificate, no peer can use TLS: configure one, or allow Insecure")
	}
	if c.TLS != nil && len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil {
		return errors.New("s2s: the TLS configuration holds no certificate")
	}
	for domain, addr := range c.Hosts {
		if domain == "" || strings.ContainsAny(domain, "@/") {
			return fmt.Errorf("s2s: hosts: %q is not a domain", domain)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("s2s: hosts: %s=%s: %w", domain, addr, err)
		}
	}
	if c.DialTimeout < 0 || c.IdleTimeout < 0 || c.ReadTimeout < 0 || c.WriteTimeout < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0 {
		return errors.New("s2s: durations must not be negative")
	}
	if c.QueueSize < 0 || c.MaxStanza < 0 || c.MaxInbound < 0 {
		return errors.New("s2s: limits must not be negative")
	}
	return nil
}

// withDefaults returns c with every zero field that means a default set.
func (c Config) withDefaults() Config {
	setDefault(&c.Addr, defaults.Addr)
	setDefault(&c.DialTimeout, defaults.DialTimeout)
	setDefault(&c.IdleTimeout, defaults.IdleTimeout)
	setDefault(&c.ReadTimeout, defaults.ReadTimeout)
	setDefault(&c.WriteTimeout, defaults.WriteTimeout)
	setDefault(&c.MinBackoff, defaults.MinBackoff)
	setDefault(&c.MaxBackoff, max(defaults.MaxBackoff, c.MinBackoff))
	setDefault(&c.QueueSize, defaults.QueueSize)
	setDefault(&c.MaxStanza, defaults.MaxStanza)
	setDefault(&c.MaxInbound, defaults.MaxInbound)
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	return c
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// ParseHosts reads "domain=host:port,domain=host:port" (spaces around the
// parts allowed; empty means none).
func ParseHosts(s string) (map[string]string, error) {
	hosts := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		domain, addr, ok := strings.Cut(part, "=")
		domain, addr = strings.ToLower(strings.TrimSpace(domain)), strings.TrimSpace(addr)
		if !ok || domain == "" || addr == "" {
			return nil, fmt.Errorf("s2s: hosts: %q is not domain=host:port", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("s2s: hosts: %q: %w", part, err)
		}
		hosts[domain] = addr
	}
	return hosts, nil
}
