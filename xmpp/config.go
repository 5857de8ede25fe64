package xmpp

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
)

// Config configures a Component. Each field says what its zero value means;
// the defaults themselves live in defaults, and only there.
type Config struct {
	// Domain is the component's domain, e.g. microblog.example.org.
	// Required.
	Domain string
	// Addr is the XMPP server's component port (host:port). Required,
	// except in s2s mode (WithFederation).
	Addr string
	// Secret is the component secret shared with the server. Required,
	// except in s2s mode.
	Secret string
	// PingTo is the JID the delivery round-trip pings go to; empty means
	// the parent domain of Domain (microblog.example.org → example.org),
	// which is the XMPP server's own host in the usual setup, or Domain
	// itself when it has no parent. Unused in s2s mode, where each chunk's
	// ping goes to the remote server its messages went to.
	PingTo string
	// PingTimeout bounds the wait, after a batch is written, for the
	// answers to its pings; zero means 10 s.
	PingTimeout time.Duration
	// WriteTimeout bounds one chunk's socket write; zero means 10 s.
	WriteTimeout time.Duration
	// MinBackoff is the first wait before a reconnect, doubled after each
	// failure; zero means 250 ms.
	MinBackoff time.Duration
	// MaxBackoff caps the wait between reconnects; zero means 5 s, or
	// MinBackoff when that is longer.
	MaxBackoff time.Duration
	// ProbeRate bounds the presence probes sent after each connect, per
	// second; zero means 100.
	ProbeRate float64
	// CommandRate refills each JID's command allowance, per second; zero
	// means 1.
	CommandRate float64
	// CommandBurst is how many commands a JID may send at once; zero
	// means 10.
	CommandBurst int
	// MaxFollowing caps how many authors one JID may follow; zero means
	// 1000.
	MaxFollowing int
	// QueueDelay is how much of the server's routing time later pages of a
	// big fanout may queue ahead of a new first page; zero means 20 ms.
	QueueDelay time.Duration
	// Payload is what each delivery carries (see Payload); zero means
	// PayloadMinimal.
	Payload Payload
	// Connections is how many component connections to hold at once;
	// zero means 1. More help a server that balances a component's
	// stanzas over its connections (ejabberd); a server that allows one
	// per component (Prosody) refuses the others, which then stand by.
	Connections int
}

// DefaultQueueDelay is Config.QueueDelay's default: a small author's post
// written behind a big fanout waits about this long in the server's queue.
const DefaultQueueDelay = 20 * time.Millisecond

// defaults holds the value of every field whose zero value means a
// default (PingTo's depends on Domain: see withDefaults).
var defaults = Config{
	PingTimeout:  10 * time.Second,
	WriteTimeout: 10 * time.Second,
	MinBackoff:   250 * time.Millisecond,
	MaxBackoff:   5 * time.Second,
	ProbeRate:    100,
	CommandRate:  1,
	CommandBurst: 10,
	MaxFollowing: 1000,
	QueueDelay:   DefaultQueueDelay,
	Payload:      PayloadMinimal,
	Connections:  1,
}

// Validate reports whether the configuration is usable for a component.
func (c Config) Validate() error { return c.validate(false) }

// validate is Validate; federated (s2s mode, see WithFederation) needs
// neither Addr nor Secret: there is no server to connect to.
func (c Config) validate(federated bool) error {
	if c.Domain == "" {
		return errors.New("xmpp: Domain is required")
	}
	if !federated && (c.Addr == "" || c.Secret == "") {
		return errors.New("xmpp: Domain, Addr and Secret are required")
	}
	if _, err := jid.Parse(c.Domain); err != nil {
		return fmt.Errorf("xmpp: domain %q: %w", c.Domain, err)
	}
	if c.PingTo != "" {
		if _, err := jid.Parse(c.PingTo); err != nil {
			return fmt.Errorf("xmpp: PingTo %q: %w", c.PingTo, err)
		}
	}
	if c.PingTimeout < 0 || c.WriteTimeout < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0 || c.QueueDelay < 0 {
		return errors.New("xmpp: durations must not be negative")
	}
	if c.MaxBackoff != 0 && c.MinBackoff > c.MaxBackoff {
		return fmt.Errorf("xmpp: MinBackoff %s exceeds MaxBackoff %s", c.MinBackoff, c.MaxBackoff)
	}
	if c.ProbeRate < 0 || c.CommandRate < 0 || c.CommandBurst < 0 || c.MaxFollowing < 0 || c.Connections < 0 {
		return errors.New("xmpp: rates and limits must not be negative")
	}
	if c.Payload != "" {
		if _, err := ParsePayload(string(c.Payload)); err != nil {
			return err
		}
	}
	return nil
}

// withDefaults returns c with every zero field that means a default set to
// it.
func (c Config) withDefaults() Config {
	if c.PingTo == "" {
		c.PingTo = parentDomain(c.Domain)
	}
	setDefault(&c.PingTimeout, defaults.PingTimeout)
	setDefault(&c.WriteTimeout, defaults.WriteTimeout)
	setDefault(&c.MinBackoff, defaults.MinBackoff)
	setDefault(&c.MaxBackoff, max(defaults.MaxBackoff, c.MinBackoff))
	setDefault(&c.ProbeRate, defaults.ProbeRate)
	setDefault(&c.CommandRate, defaults.CommandRate)
	setDefault(&c.CommandBurst, defaults.CommandBurst)
	setDefault(&c.MaxFollowing, defaults.MaxFollowing)
	setDefault(&c.QueueDelay, defaults.QueueDelay)
	setDefault(&c.Payload, defaults.Payload)
	setDefault(&c.Connections, defaults.Connections)
	return c
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// parentDomain is domain without its first label, or domain itself when it
// has a single label.
func parentDomain(domain string) string {
	if _, parent, ok := strings.Cut(domain, "."); ok {
		return parent
	}
	return domain
}
