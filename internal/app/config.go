package app

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// Common is configuration both processes share.
type Common struct {
	RedisURL    string
	RedisPrefix string
	NATSURL     string
	Domain      string
	MetricsAddr string
	LogLevel    string
}

// Gateway is the configuration of cmd/gateway.
type Gateway struct {
	Common
	EmbeddedNATSAddr string
	DataDir          string
	XMPPAddr         string
	XMPPSecret       string // from the environment only
	XMPPPingTo       string
}

// API is the configuration of cmd/api.
type API struct {
	Common
	HTTPAddr     string
	AdminToken   string // from the environment only
	MaxPostChars int
}

// Env looks a variable up, like os.LookupEnv.
type Env func(string) (string, bool)

// binder registers flags whose defaults come from the environment.
type binder struct {
	fs  *flag.FlagSet
	env Env
	err error
}

func (b *binder) str(p *string, flagName, envName, def, usage string) {
	if v, ok := b.env(envName); ok {
		def = v
	}
	b.fs.StringVar(p, flagName, def, usage+" ($"+envName+")")
}

func (b *binder) integer(p *int, flagName, envName string, def int, usage string) {
	if v, ok := b.env(envName); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.err = errors.Join(b.err, fmt.Errorf("$%s: %q is not a number", envName, v))
		}
		def = n
	}
	b.fs.IntVar(p, flagName, def, usage+" ($"+envName+")")
}

// secret reads a value that must come from the environment, never a flag.
func (b *binder) secret(p *string, envName string) {
	*p, _ = b.env(envName)
}

func (b *binder) common(c *Common, natsDefault, metricsDefault string) {
	b.str(&c.RedisURL, "redis-url", "STARLING_REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL")
	b.str(&c.RedisPrefix, "redis-prefix", "STARLING_REDIS_PREFIX", "starling:", "Redis key prefix")
	b.str(&c.NATSURL, "nats-url", "STARLING_NATS_URL", natsDefault, "NATS URL")
	b.str(&c.Domain, "xmpp-domain", "STARLING_XMPP_DOMAIN", "", "the component's XMPP domain")
	b.str(&c.MetricsAddr, "metrics-addr", "STARLING_METRICS_ADDR", metricsDefault, "address of /metrics, /healthz and /readyz")
	b.str(&c.LogLevel, "log-level", "STARLING_LOG_LEVEL", "info", "log level: debug, info, warn or error")
}

// ParseGateway reads the gateway's flags and environment.
func ParseGateway(args []string, env Env) (Gateway, error) {
	var c Gateway
	fs := flag.NewFlagSet("starling-gateway", flag.ContinueOnError)
	b := &binder{fs: fs, env: env}
	b.common(&c.Common, "", "127.0.0.1:9464")
	b.str(&c.EmbeddedNATSAddr, "embedded-nats-addr", "STARLING_EMBEDDED_NATS_ADDR", "127.0.0.1:4222", "listen address of the embedded NATS server (when the NATS URL is empty)")
	b.str(&c.DataDir, "data-dir", "STARLING_DATA_DIR", "./data", "JetStream storage of the embedded NATS server")
	b.str(&c.XMPPAddr, "xmpp-addr", "STARLING_XMPP_ADDR", "127.0.0.1:5347", "the XMPP server's component port")
	b.str(&c.XMPPPingTo, "xmpp-ping-to", "STARLING_XMPP_PING_TO", "", "JID answering delivery pings (default: the component domain's parent)")
	b.secret(&c.XMPPSecret, "STARLING_XMPP_SECRET")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if b.err != nil {
		return c, b.err
	}
	return c, c.Validate()
}

// Validate reports missing or malformed settings.
func (c Gateway) Validate() error {
	var errs []error
	if c.Domain == "" {
		errs = append(errs, errors.New("STARLING_XMPP_DOMAIN is required"))
	}
	if c.XMPPSecret == "" {
		errs = append(errs, errors.New("STARLING_XMPP_SECRET is required"))
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ParseAPI reads the API's flags and environment.
func ParseAPI(args []string, env Env) (API, error) {
	var c API
	fs := flag.NewFlagSet("starling-api", flag.ContinueOnError)
	b := &binder{fs: fs, env: env}
	b.common(&c.Common, "nats://127.0.0.1:4222", "")
	b.str(&c.HTTPAddr, "http-addr", "STARLING_HTTP_ADDR", "127.0.0.1:8080", "HTTP listen address")
	b.integer(&c.MaxPostChars, "max-post-chars", "STARLING_MAX_POST_CHARS", 500, "longest post, in Unicode code points")
	b.secret(&c.AdminToken, "STARLING_ADMIN_TOKEN")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if b.err != nil {
		return c, b.err
	}
	return c, c.Validate()
}

// Validate reports missing or malformed settings.
func (c API) Validate() error {
	var errs []error
	if c.Domain == "" {
		errs = append(errs, errors.New("STARLING_XMPP_DOMAIN is required (the API returns authors' JIDs)"))
	}
	if c.MaxPostChars < 1 {
		errs = append(errs, errors.New("STARLING_MAX_POST_CHARS must be at least 1"))
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ParseLevel reads a slog level name.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("log level %q: use debug, info, warn or error", s)
	}
	return l, nil
}
