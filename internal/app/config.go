package app

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"starling.dev/starling"
	"starling.dev/starling/accounts"
	"starling.dev/starling/fanout"
	"starling.dev/starling/httpapi"
	"starling.dev/starling/s2s"
	"starling.dev/starling/subscribers"
	"starling.dev/starling/web"
	"starling.dev/starling/xmpp"
)

// Common is configuration both processes share.
type Common struct {
	RedisURL    string
	RedisPrefix string
	// RedisCluster makes RedisURL a Redis Cluster's seed nodes in
	// go-redis's cluster URL form (redis://h1:p1?addr=h2:p2&addr=h3:p3).
	RedisCluster bool
	// NATSURL may list several servers, comma-separated (a NATS cluster):
	// the client connects to one and fails over to the others.
	NATSURL string
	// NATSToken, when set, is required by the gateway's embedded server and
	// sent by both processes (from the environment only).
	NATSToken string
	// NATSReplicas is how many replicas the streams get when this process
	// creates them (3 on a 3-node JetStream cluster).
	NATSReplicas int
	// FollowerShards is how many sorted sets, each in a Redis Cluster slot
	// of its own, every author's followers are spread over
	// (subscribers.WithFollowerShards). It is fixed once data exists: both
	// processes check it against the count recorded in Redis at start.
	FollowerShards int

	Domain      string
	MetricsAddr string
	LogLevel    string
	// PostHistory is how many posts per author stay addressable (GET
	// /v1/statuses/{id}, pagination, IM "last"). Both processes record
	// posts (the gateway repairs what the API could not record), so both
	// trim the history to it.
	PostHistory int
	// Limits of the JetStream streams, which either process may create;
	// zero turns a limit off.
	PostsMaxAge, DeliveriesMaxAge     time.Duration
	PostsMaxBytes, DeliveriesMaxBytes int64
}

// Gateway is the configuration of cmd/gateway.
type Gateway struct {
	Common
	EmbeddedNATSAddr string
	DataDir          string
	XMPPAddr         string
	XMPPSecret       string // from the environment only
	XMPPPingTo       string
	ProbeRate        float64
	CommandRate      float64
	CommandBurst     int
	MaxFollowing     int
	// Payload is the delivery profile, "minimal" or "atom" (xmpp.Payload).
	Payload string
	// XMPPConnections is how many component connections the gateway holds
	// (xmpp.Config.Connections).
	XMPPConnections int
	// QueueDelay is how much of the XMPP server's routing time a big
	// fanout may keep queued (xmpp.Config.QueueDelay).
	QueueDelay time.Duration
	// DeliveryMaxLag is the age past which a post is no longer delivered
	// (fanout.ConsumerConfig.MaxLag); zero turns the limit off.
	DeliveryMaxLag time.Duration
	// XMPPMode is "component" (XEP-0114 to a local XMPP server) or "s2s"
	// (the gateway is the XMPP server of Domain and federates itself).
	XMPPMode string
	// S2SAddr is where remote servers connect in s2s mode.
	S2SAddr string
	// S2SHosts maps remote domains to host:port, before DNS (s2s mode).
	S2SHosts map[string]string
	// S2SSecret keys the dialback keys, the same on every replica (from
	// the environment only; required in s2s mode).
	S2SSecret string
	// TLSCert and TLSKey are the s2s certificate and key files; with them
	// STARTTLS is offered and used.
	TLSCert, TLSKey string
	// S2SInsecure allows federating without TLS.
	S2SInsecure bool
	// MaxTrack caps the words one JID may track (xmpp.WithMaxTrack).
	MaxTrack int
	// MaxPostChars is the longest post by IM, as the API's for the REST
	// API (xmpp.PostConfig.MaxPostChars).
	MaxPostChars int
}

// API is the configuration of cmd/api.
type API struct {
	Common
	HTTPAddr     string
	AdminToken   string // from the environment only
	MaxPostChars int
	// Rate limits per client IP and per bearer token: requests per second
	// (0 turns the limit off, as in httpapi.RateLimits) and burst.
	RateIP, RateToken           float64
	RateIPBurst, RateTokenBurst int
	// TrustedProxies are the peers whose X-Forwarded-For is believed
	// (httpapi.Config.TrustedProxies); none by default.
	TrustedProxies []netip.Prefix
	// SSEMaxClients and SSEMaxPerIP bound the event stream clients of the
	// process and of one client address (httpapi.HubConfig).
	SSEMaxClients, SSEMaxPerIP int
	// PublicURL is where the web pages are reached (web.Config.PublicURL);
	// empty means the request's host.
	PublicURL string
	// AuthCacheTTL is how long a token's owner is believed without asking
	// Redis again (httpapi.Config.AuthCacheTTL); zero turns the cache off.
	AuthCacheTTL time.Duration
	// JIDCodeTTL is how long a code for linking a JID waits
	// (httpapi.Config.JIDCodeTTL).
	JIDCodeTTL time.Duration
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

func (b *binder) int64(p *int64, flagName, envName string, def int64, usage string) {
	if v, ok := b.env(envName); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.err = errors.Join(b.err, fmt.Errorf("$%s: %q is not a whole number of bytes", envName, v))
		}
		def = n
	}
	b.fs.Int64Var(p, flagName, def, usage+" ($"+envName+")")
}

func (b *binder) duration(p *time.Duration, flagName, envName string, def time.Duration, usage string) {
	if v, ok := b.env(envName); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.err = errors.Join(b.err, fmt.Errorf("$%s: %q is not a duration (like 90m or 24h)", envName, v))
		}
		def = d
	}
	b.fs.DurationVar(p, flagName, def, usage+" ($"+envName+")")
}

func (b *binder) float(p *float64, flagName, envName string, def float64, usage string) {
	if v, ok := b.env(envName); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			b.err = errors.Join(b.err, fmt.Errorf("$%s: %q is not a number", envName, v))
		}
		def = f
	}
	b.fs.Float64Var(p, flagName, def, usage+" ($"+envName+")")
}

func (b *binder) boolean(p *bool, flagName, envName string, def bool, usage string) {
	if v, ok := b.env(envName); ok {
		f, err := strconv.ParseBool(v)
		if err != nil {
			b.err = errors.Join(b.err, fmt.Errorf("$%s: %q is not true or false", envName, v))
		}
		def = f
	}
	b.fs.BoolVar(p, flagName, def, usage+" ($"+envName+")")
}

// secret reads a value that must come from the environment, never a flag.
func (b *binder) secret(p *string, envName string) {
	*p, _ = b.env(envName)
}

func (b *binder) common(c *Common, natsDefault, metricsDefault string) {
	b.str(&c.RedisURL, "redis-url", "STARLING_REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL")
	b.str(&c.RedisPrefix, "redis-prefix", "STARLING_REDIS_PREFIX", "starling:", "Redis key prefix")
	b.boolean(&c.RedisCluster, "redis-cluster", "STARLING_REDIS_CLUSTER", false, "Redis Cluster: STARLING_REDIS_URL lists seed nodes as redis://h1:p1?addr=h2:p2&addr=h3:p3")
	b.str(&c.NATSURL, "nats-url", "STARLING_NATS_URL", natsDefault, "NATS URL; several servers of a cluster comma-separated")
	b.integer(&c.FollowerShards, "follower-shards", "STARLING_FOLLOWER_SHARDS", 1, "sorted sets each author's followers are spread over, each in a Redis Cluster slot of its own; fixed once data exists")
	b.integer(&c.NATSReplicas, "nats-replicas", "STARLING_NATS_REPLICAS", 1, "replicas of the JetStream streams this process creates (3 on a 3-node cluster)")
	b.secret(&c.NATSToken, "STARLING_NATS_TOKEN")
	b.str(&c.Domain, "xmpp-domain", "STARLING_XMPP_DOMAIN", "", "the component's XMPP domain")
	b.str(&c.MetricsAddr, "metrics-addr", "STARLING_METRICS_ADDR", metricsDefault, "address of /metrics, /healthz and /readyz")
	b.str(&c.LogLevel, "log-level", "STARLING_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	b.integer(&c.PostHistory, "post-history", "STARLING_POST_HISTORY", accounts.DefaultRecentPosts, "posts per author kept addressable by id and for pagination")
	b.duration(&c.PostsMaxAge, "posts-max-age", "STARLING_POSTS_MAX_AGE", fanout.DefaultPostsMaxAge, "how long the POSTS stream keeps a post; 0 turns the limit off")
	b.int64(&c.PostsMaxBytes, "posts-max-bytes", "STARLING_POSTS_MAX_BYTES", fanout.DefaultPostsMaxBytes, "size limit of the POSTS stream, oldest dropped first; 0 turns the limit off")
	b.duration(&c.DeliveriesMaxAge, "deliveries-max-age", "STARLING_DELIVERIES_MAX_AGE", fanout.DefaultDeliveriesMaxAge, "how long a delivery batch may wait in the DELIVERIES stream; 0 turns the limit off")
	b.int64(&c.DeliveriesMaxBytes, "deliveries-max-bytes", "STARLING_DELIVERIES_MAX_BYTES", fanout.DefaultDeliveriesMaxBytes, "size limit of the DELIVERIES stream, new batches refused when full; 0 turns the limit off")
}

// validate reports malformed shared settings.
func (c Common) validate() []error {
	var errs []error
	if c.PostHistory < 1 {
		errs = append(errs, errors.New("STARLING_POST_HISTORY must be at least 1"))
	}
	if c.FollowerShards < 1 || c.FollowerShards > subscribers.MaxFollowerShards {
		errs = append(errs, fmt.Errorf("STARLING_FOLLOWER_SHARDS must be 1 to %d", subscribers.MaxFollowerShards))
	}
	badReplicas := c.NATSReplicas < 1 || c.NATSReplicas > fanout.MaxReplicas
	if badReplicas {
		errs = append(errs, fmt.Errorf("STARLING_NATS_REPLICAS must be 1 to %d", fanout.MaxReplicas))
	}
	if c.PostsMaxAge < 0 || c.DeliveriesMaxAge < 0 || c.PostsMaxBytes < 0 || c.DeliveriesMaxBytes < 0 {
		errs = append(errs, errors.New("STARLING_POSTS_MAX_* and STARLING_DELIVERIES_MAX_* must not be negative"))
	} else if err := c.streamLimits().Validate(); err != nil && !badReplicas {
		errs = append(errs, err)
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// streamLimits are the stream settings as fanout takes them: there zero
// means the default and negative no limit.
func (c Common) streamLimits() fanout.StreamLimits {
	return fanout.StreamLimits{
		PostsMaxAge: offIfZero(c.PostsMaxAge), PostsMaxBytes: offIfZero(c.PostsMaxBytes),
		DeliveriesMaxAge: offIfZero(c.DeliveriesMaxAge), DeliveriesMaxBytes: offIfZero(c.DeliveriesMaxBytes),
		Replicas: c.NATSReplicas,
	}
}

// offIfZero maps a setting's "0 turns it off" to a package's "negative
// means no limit" (where zero means the default).
func offIfZero[T time.Duration | int64](v T) T {
	if v == 0 {
		return -1
	}
	return v
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
	b.float(&c.ProbeRate, "presence-probe-rate", "STARLING_PRESENCE_PROBE_RATE", 100, "presence probes per second after each connect")
	b.float(&c.CommandRate, "command-rate", "STARLING_COMMAND_RATE", 1, "IM commands per second one JID may send, sustained")
	b.integer(&c.CommandBurst, "command-burst", "STARLING_COMMAND_BURST", 10, "IM commands one JID may send at once")
	b.integer(&c.MaxFollowing, "max-following", "STARLING_MAX_FOLLOWING", 1000, "most authors one JID may follow")
	b.str(&c.Payload, "payload", "STARLING_PAYLOAD", string(xmpp.PayloadMinimal), "what a delivery carries: minimal (body and origin-id, what clients show) or atom (adds the Atom entry, for machine consumers)")
	b.duration(&c.QueueDelay, "queue-delay", "STARLING_QUEUE_DELAY", xmpp.DefaultQueueDelay, "how much of the XMPP server's routing time a big fanout keeps queued: a small author's post waits about this long behind it; more lets a big fanout go faster")
	b.integer(&c.XMPPConnections, "xmpp-connections", "STARLING_XMPP_CONNECTIONS", 1, "component connections to hold: more where the server balances them (ejabberd); Prosody allows one, and the others stand by")
	b.duration(&c.DeliveryMaxLag, "delivery-max-lag", "STARLING_DELIVERY_MAX_LAG", fanout.DefaultMaxLag, "age past which a post is no longer delivered (counted and logged); 0 turns the limit off")
	b.integer(&c.MaxTrack, "max-track", "STARLING_MAX_TRACK", xmpp.DefaultMaxTrack, "most words (and #tags) one JID may track")
	b.integer(&c.MaxPostChars, "max-post-chars", "STARLING_MAX_POST_CHARS", starling.DefaultMaxPostChars, "longest post by IM, in Unicode code points (set it as the API's)")
	b.str(&c.XMPPMode, "xmpp-mode", "STARLING_XMPP_MODE", ModeComponent, "component (XEP-0114 to a local XMPP server) or s2s (the gateway is the XMPP server of its domain)")
	b.str(&c.S2SAddr, "s2s-addr", "STARLING_S2S_ADDR", ":5269", "s2s mode: where remote servers connect")
	var s2sHosts string
	b.str(&s2sHosts, "s2s-hosts", "STARLING_S2S_HOSTS", "", "s2s mode: domain=host:port,... used before DNS SRV and A/AAAA")
	b.str(&c.TLSCert, "tls-cert", "STARLING_TLS_CERT", "", "s2s mode: certificate file (PEM); with the key, STARTTLS is offered and used")
	b.str(&c.TLSKey, "tls-key", "STARLING_TLS_KEY", "", "s2s mode: the certificate's key file (PEM)")
	b.boolean(&c.S2SInsecure, "s2s-insecure", "STARLING_S2S_INSECURE", false, "s2s mode: allow federating without TLS (tests, closed networks)")
	b.secret(&c.S2SSecret, "STARLING_S2S_SECRET")
	b.secret(&c.XMPPSecret, "STARLING_XMPP_SECRET")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if hosts, err := s2s.ParseHosts(s2sHosts); err != nil {
		b.err = errors.Join(b.err, fmt.Errorf("STARLING_S2S_HOSTS: %w", err))
	} else {
		c.S2SHosts = hosts
	}
	if b.err != nil {
		return c, b.err
	}
	return c, c.Validate()
}

// maxXMPPConnections bounds STARLING_XMPP_CONNECTIONS: each connection is a
// process on the server's side too.
const maxXMPPConnections = 16

// Validate reports missing or malformed settings.
func (c Gateway) Validate() error {
	errs := c.validate()
	if c.Domain == "" {
		errs = append(errs, errors.New("STARLING_XMPP_DOMAIN is required"))
	}
	errs = append(errs, c.validateMode()...)
	if c.ProbeRate <= 0 || c.CommandRate <= 0 || c.CommandBurst < 1 || c.MaxFollowing < 1 {
		errs = append(errs, errors.New("probe rate, command rate and burst, and max following must be positive"))
	}
	if c.QueueDelay <= 0 {
		errs = append(errs, errors.New("STARLING_QUEUE_DELAY must be positive"))
	}
	if c.XMPPConnections < 1 || c.XMPPConnections > maxXMPPConnections {
		errs = append(errs, fmt.Errorf("STARLING_XMPP_CONNECTIONS must be between 1 and %d", maxXMPPConnections))
	}
	if c.DeliveryMaxLag < 0 {
		errs = append(errs, errors.New("STARLING_DELIVERY_MAX_LAG must not be negative"))
	}
	if c.MaxTrack < 1 || c.MaxPostChars < 1 {
		errs = append(errs, errors.New("STARLING_MAX_TRACK and STARLING_MAX_POST_CHARS must be at least 1"))
	}
	if _, err := xmpp.ParsePayload(c.Payload); err != nil {
		errs = append(errs, fmt.Errorf("STARLING_PAYLOAD: %q is not a payload profile: use minimal or atom", c.Payload))
	}
	return errors.Join(errs...)
}

// The XMPP modes (STARLING_XMPP_MODE).
const (
	ModeComponent = "component"
	ModeS2S       = "s2s"
)

// validateMode checks what the XMPP mode requires: the component secret,
// or the dialback secret and TLS (or leave to do without).
func (c Gateway) validateMode() []error {
	switch c.XMPPMode {
	case ModeComponent:
		if c.XMPPSecret == "" {
			return []error{errors.New("STARLING_XMPP_SECRET is required")}
		}
	case ModeS2S:
		var errs []error
		if c.S2SSecret == "" {
			errs = append(errs, errors.New("STARLING_S2S_SECRET is required in s2s mode"))
		}
		if (c.TLSCert == "") != (c.TLSKey == "") {
			errs = append(errs, errors.New("STARLING_TLS_CERT and STARLING_TLS_KEY go together"))
		} else if c.TLSCert == "" && !c.S2SInsecure {
			errs = append(errs, errors.New("s2s mode needs STARLING_TLS_CERT and STARLING_TLS_KEY, or STARLING_S2S_INSECURE=true to federate without TLS"))
		}
		if _, _, err := net.SplitHostPort(c.S2SAddr); err != nil {
			errs = append(errs, fmt.Errorf("STARLING_S2S_ADDR: %w", err))
		}
		return errs
	default:
		return []error{fmt.Errorf("STARLING_XMPP_MODE: %q: use %s or %s", c.XMPPMode, ModeComponent, ModeS2S)}
	}
	return nil
}

// consumerConfig is the pipeline's tuning from the settings.
func (c Gateway) consumerConfig() fanout.ConsumerConfig {
	return fanout.ConsumerConfig{MaxLag: offIfZero(c.DeliveryMaxLag)}
}

// ParseAPI reads the API's flags and environment.
func ParseAPI(args []string, env Env) (API, error) {
	var c API
	fs := flag.NewFlagSet("starling-api", flag.ContinueOnError)
	b := &binder{fs: fs, env: env}
	b.common(&c.Common, "nats://127.0.0.1:4222", "")
	b.str(&c.HTTPAddr, "http-addr", "STARLING_HTTP_ADDR", "127.0.0.1:8080", "HTTP listen address")
	b.integer(&c.MaxPostChars, "max-post-chars", "STARLING_MAX_POST_CHARS", starling.DefaultMaxPostChars, "longest post, in Unicode code points")
	b.float(&c.RateIP, "rate-ip", "STARLING_RATE_IP", httpapi.DefaultIPRate, "requests per second per client IP; 0 turns the limit off")
	b.integer(&c.RateIPBurst, "rate-ip-burst", "STARLING_RATE_IP_BURST", httpapi.DefaultIPBurst, "requests one client IP may make at once")
	b.float(&c.RateToken, "rate-token", "STARLING_RATE_TOKEN", httpapi.DefaultTokenRate, "requests per second per bearer token; 0 turns the limit off")
	b.integer(&c.RateTokenBurst, "rate-token-burst", "STARLING_RATE_TOKEN_BURST", httpapi.DefaultTokenBurst, "requests one bearer token may make at once")
	var proxies string
	b.str(&proxies, "trusted-proxies", "STARLING_TRUSTED_PROXIES", "", "comma-separated CIDRs of the reverse proxies whose X-Forwarded-For is believed")
	b.integer(&c.SSEMaxClients, "sse-max-clients", "STARLING_SSE_MAX_CLIENTS", httpapi.DefaultSSEMaxClients, "event stream (Server-Sent Events) clients this process serves at once")
	b.integer(&c.SSEMaxPerIP, "sse-max-per-ip", "STARLING_SSE_MAX_PER_IP", httpapi.DefaultSSEMaxPerIP, "event stream clients one client address may hold at once")
	b.str(&c.PublicURL, "public-url", "STARLING_PUBLIC_URL", "", "address the web pages are reached at, e.g. https://microblog.example.org, for absolute links in feeds and link previews; empty: the request's host")
	b.duration(&c.JIDCodeTTL, "jid-code-ttl", "STARLING_JID_CODE_TTL", httpapi.DefaultJIDCodeTTL, "how long a code for linking a JID (POST /v1/users/{username}/jids) waits for the JID to send it")
	b.duration(&c.AuthCacheTTL, "auth-cache-ttl", "STARLING_AUTH_CACHE_TTL", httpapi.DefaultAuthCacheTTL, "how long a token's owner is believed without asking Redis again; a token rotated or deleted through another API replica works there at most this long; 0 turns the cache off")
	b.secret(&c.AdminToken, "STARLING_ADMIN_TOKEN")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var err error
	if c.TrustedProxies, err = httpapi.ParseTrustedProxies(proxies); err != nil {
		b.err = errors.Join(b.err, fmt.Errorf("STARLING_TRUSTED_PROXIES: %w", err))
	}
	if b.err != nil {
		return c, b.err
	}
	return c, c.Validate()
}

// Validate reports missing or malformed settings.
func (c API) Validate() error {
	errs := c.validate()
	if c.Domain == "" {
		errs = append(errs, errors.New("STARLING_XMPP_DOMAIN is required (the API returns authors' JIDs)"))
	}
	if c.MaxPostChars < 1 {
		errs = append(errs, errors.New("STARLING_MAX_POST_CHARS must be at least 1"))
	}
	if c.AuthCacheTTL < 0 {
		errs = append(errs, errors.New("STARLING_AUTH_CACHE_TTL must not be negative"))
	}
	if c.JIDCodeTTL <= 0 {
		errs = append(errs, errors.New("STARLING_JID_CODE_TTL must be positive"))
	}
	if c.SSEMaxClients < 1 || c.SSEMaxPerIP < 1 {
		errs = append(errs, errors.New("STARLING_SSE_MAX_CLIENTS and STARLING_SSE_MAX_PER_IP must be at least 1"))
	}
	if c.PublicURL != "" {
		if err := web.CheckPublicURL(c.PublicURL); err != nil {
			errs = append(errs, fmt.Errorf("STARLING_PUBLIC_URL: %w", err))
		}
	}
	if c.RateIP < 0 || c.RateToken < 0 || c.RateIPBurst < 1 || c.RateTokenBurst < 1 {
		errs = append(errs, errors.New("STARLING_RATE_* must not be negative, and bursts at least 1"))
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
