package httpapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"starling.dev/starling"
	"starling.dev/starling/internal/health"
	"starling.dev/starling/web"
)

// Accounts is what the API needs of the accounts store: accounts and their
// posts. accounts.RedisStore implements it.
type Accounts interface {
	Users
	Posts
	JIDLinks
}

// Users is the account part of the store.
type Users interface {
	// CreateUser stores a new author; starling.ErrUserExists if taken.
	CreateUser(ctx context.Context, username, displayName, tokenHash string, now time.Time) error
	// UserByTokenHash returns the owner of a token hash and their display
	// name; starling.ErrUnknownToken if the hash is not the account's current
	// one (or there is no account).
	UserByTokenHash(ctx context.Context, tokenHash string) (user, displayName string, err error)
	// UserExists reports whether an author exists.
	UserExists(ctx context.Context, username string) (bool, error)
	// Profile returns an author's public record; starling.ErrUnknownUser if none.
	Profile(ctx context.Context, username string) (starling.Profile, error)
	// UpdateProfile sets the non-nil fields; starling.ErrUnknownUser if none.
	UpdateProfile(ctx context.Context, username string, displayName, bio *string) (starling.Profile, error)
	// RotateToken replaces the author's token hash; the old one stops
	// working before it returns. starling.ErrUnknownUser if none.
	RotateToken(ctx context.Context, username, tokenHash string) error
	// DeleteUser removes an author, their followers and posts;
	// starling.ErrUnknownUser if none.
	DeleteUser(ctx context.Context, username string) error
}

// Posts is the post history part of the store.
type Posts interface {
	// RecordPost counts a post JetStream has accepted and keeps it in the
	// author's history; recording it again changes nothing.
	RecordPost(ctx context.Context, p starling.Post) error
	// ReserveIdempotent stores p under the author's Idempotency-Key, or
	// returns the post stored there first and true.
	ReserveIdempotent(ctx context.Context, author, key string, p starling.Post) (starling.Post, bool, error)
	// MarkIdempotentDone records that the key's post is published;
	// IdempotentDone reports it, so a late retry does not publish again.
	MarkIdempotentDone(ctx context.Context, author, key string) error
	IdempotentDone(ctx context.Context, author, key string) (bool, error)
	// StatusByID returns a post of some author's history, or false.
	StatusByID(ctx context.Context, id string) (starling.Post, bool, error)
	// Statuses returns up to n of the author's posts older than before
	// ("" for the newest), newest first.
	Statuses(ctx context.Context, username, before string, n int) ([]starling.Post, error)
	// ReserveRetraction stores p as the retraction of the post id, or
	// returns the one stored by an earlier attempt and true.
	ReserveRetraction(ctx context.Context, author, id string, p starling.Post) (starling.Post, bool, error)
	// DeletePost removes a post from the author's history.
	DeletePost(ctx context.Context, author, id string) (bool, error)
}

// Followers is what the API needs of the social graph.
// subscribers.RedisStore implements it.
type Followers interface {
	// FollowerPage returns one page of the author's followers and the
	// opaque cursor of the next, "" at the end. A cursor it did not make
	// gives an error with a BadCursor method that returns true.
	FollowerPage(ctx context.Context, author, cursor string, count int, buf []string) ([]string, string, error)
	// Follow makes the bare JID follow author and reports whether it is new.
	Follow(ctx context.Context, author, jid string) (bool, error)
	// Unfollow ends the relation and reports whether there was one.
	Unfollow(ctx context.Context, author, jid string) (bool, error)
	// AddFollowers adds bare JIDs in one round trip and returns how many
	// were new.
	AddFollowers(ctx context.Context, author string, jids []string) (int, error)
}

// Publisher hands a post to the pipeline.
type Publisher interface {
	// PublishPost returns once the post is durably stored; duplicate is true
	// when it had been stored before under the same id.
	PublishPost(ctx context.Context, p starling.Post) (duplicate bool, err error)
}

// Config configures the API handler.
type Config struct {
	// Domain is the XMPP domain of authors' JIDs (username@Domain); required.
	Domain string
	// AdminToken is the bearer token of the admin endpoints; empty disables
	// them (they answer 403).
	AdminToken string
	// MaxPostChars is the longest post in Unicode code points; zero means 500.
	MaxPostChars int
	// Ready are the checks behind /readyz (NATS and Redis reachable); /readyz
	// is 200 when all pass within 2 s. Nil means always ready.
	Ready []health.Check
	// Logger receives the request log and unexpected errors; nil discards them.
	Logger *slog.Logger
	// Registerer receives the API's metrics; nil means a private registry
	// nobody gathers.
	Registerer prometheus.Registerer
	// Gatherer is served at /metrics; nil means there is no /metrics route.
	Gatherer prometheus.Gatherer
	// Now is the clock posts and accounts are stamped with; nil means time.Now.
	Now func() time.Time
	// RateLimits bounds requests per client IP and per bearer token; the
	// zero value means no limits (see RateLimits and DefaultIPRate).
	RateLimits RateLimits
	// TrustedProxies are the peers (reverse proxies, load balancers) whose
	// X-Forwarded-For is believed: from them the client is the rightmost
	// forwarded address not in these prefixes (see ParseTrustedProxies).
	// Nil means none: the client is always the connection's peer.
	TrustedProxies []netip.Prefix
	// MaxImportBytes bounds the body of a follower import; zero means 1 GiB
	// (about 30 million lines).
	MaxImportBytes int64
	// Hub serves the event streams and the landing page's latest posts;
	// whoever made it feeds it (Hub.Follow). Nil means a hub nobody feeds:
	// event streams then carry the post history and heartbeats only.
	Hub *Hub
	// SSEHeartbeat is how often an idle event stream gets a comment line;
	// zero means 15 s.
	SSEHeartbeat time.Duration
	// PublicURL is the address the web pages are reached at
	// (web.Config.PublicURL); empty means the request's host.
	PublicURL string
	// AuthCacheTTL is how long a token's owner is believed without asking
	// Redis again (DefaultAuthCacheTTL is what the binaries use); zero turns
	// the cache off. A token rotated or deleted through another replica
	// keeps working here for at most this long.
	AuthCacheTTL time.Duration
	// JIDCodeTTL is how long a code for linking a JID waits for the JID
	// to send it; zero means DefaultJIDCodeTTL.
	JIDCodeTTL time.Duration
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	switch {
	case c.Domain == "":
		return errors.New("httpapi: Domain is required")
	case strings.ContainsAny(c.Domain, "@/ "):
		return fmt.Errorf("httpapi: Domain %q is not a domain", c.Domain)
	case c.MaxPostChars < 0:
		return errors.New("httpapi: MaxPostChars must not be negative")
	case c.MaxImportBytes < 0:
		return errors.New("httpapi: MaxImportBytes must not be negative")
	case c.SSEHeartbeat < 0:
		return errors.New("httpapi: SSEHeartbeat must not be negative")
	case c.AuthCacheTTL < 0:
		return errors.New("httpapi: AuthCacheTTL must not be negative")
	case c.JIDCodeTTL < 0:
		return errors.New("httpapi: JIDCodeTTL must not be negative")
	}
	if err := c.RateLimits.Validate(); err != nil {
		return err
	}
	if err := validateTrustedProxies(c.TrustedProxies); err != nil {
		return err
	}
	if _, err := health.New(health.Config{Checks: c.Ready}); err != nil {
		return fmt.Errorf("httpapi: Ready: %w", err)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MaxPostChars == 0 {
		c.MaxPostChars = starling.DefaultMaxPostChars
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxImportBytes == 0 {
		c.MaxImportBytes = defaultMaxImportBytes
	}
	if c.Hub == nil {
		c.Hub = NewHub(HubConfig{})
	}
	if c.SSEHeartbeat == 0 {
		c.SSEHeartbeat = defaultHeartbeat
	}
	if c.JIDCodeTTL == 0 {
		c.JIDCodeTTL = DefaultJIDCodeTTL
	}
	c.RateLimits = c.RateLimits.withDefaults()
	return c
}

// server holds the handlers' dependencies.
type server struct {
	acc       Accounts
	graph     Followers
	pub       Publisher
	cfg       Config
	log       *slog.Logger
	adminHash [sha256.Size]byte
	ids       *idSource
	metrics   *metrics
	router    *chi.Mux
	limits    *limiters
	proxies   proxies
	probes    *health.Handler
	hub       *Hub
	auth      *authCache // token owners, for AuthCacheTTL
	pages     *web.Pages
}

// New returns the API's router. acc, graph and pub are used concurrently by
// every request; the caller owns them.
func New(acc Accounts, graph Followers, pub Publisher, cfg Config) (http.Handler, error) {
	if acc == nil || graph == nil || pub == nil {
		return nil, errors.New("httpapi: Accounts, Followers and Publisher are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	if err := registerHubMetrics(cfg.Registerer, cfg.Hub); err != nil {
		return nil, err
	}
	s := &server{acc: acc, graph: graph, pub: pub, cfg: cfg, log: cfg.Logger, ids: newIDSource(), metrics: m,
		limits: newLimiters(cfg.RateLimits), proxies: normalizePrefixes(cfg.TrustedProxies), hub: cfg.Hub,
		auth: newAuthCache(cfg.AuthCacheTTL, time.Now)}
	s.pages, err = web.New(acc, cfg.Hub, web.Config{
		Domain: cfg.Domain, PublicURL: cfg.PublicURL, Logger: cfg.Logger, Now: cfg.Now,
	})
	if err != nil {
		return nil, err
	}
	s.probes, err = health.New(health.Config{
		Checks: cfg.Ready, Timeout: readyTimeout, ProblemType: typeNotReady, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	s.adminHash = sha256.Sum256([]byte(cfg.AdminToken))
	s.routes()
	return s.router, nil
}

func (s *server) routes() {
	r := chi.NewRouter()
	r.Use(middleware.RequestID, s.resolveClient, s.observe, s.recoverer)
	r.NotFound(s.notFound)
	r.MethodNotAllowed(s.methodNotAllowed)
	// Probes and scrapes are not rate limited: the orchestrator and
	// Prometheus must always get through.
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	if s.cfg.Gatherer != nil {
		r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	r.Group(func(r chi.Router) {
		r.Use(s.rateLimit)
		r.Get("/openapi.yaml", s.openAPI)
		r.Post("/v1/users", s.createUser)
		r.Get("/v1/users/{username}", s.getUser)
		r.Patch("/v1/users/{username}", s.updateUser)
		r.Delete("/v1/users/{username}", s.deleteUser)
		r.Post("/v1/users/{username}/token", s.rotateToken)
		r.Get("/v1/users/{username}/statuses", s.listStatuses)
		r.Get("/v1/users/{username}/events", s.userEvents)
		r.Get("/v1/users/{username}/followers", s.listFollowers)
		r.Post("/v1/users/{username}/followers/import", s.importFollowers)
		r.Put("/v1/users/{username}/followers/{jid}", s.putFollower)
		r.Delete("/v1/users/{username}/followers/{jid}", s.deleteFollower)
		r.Post("/v1/users/{username}/jids", s.createJIDCode)
		r.Get("/v1/users/{username}/jids", s.listJIDs)
		r.Delete("/v1/users/{username}/jids/{jid}", s.deleteJID)
		r.Post("/v1/statuses", s.postStatus)
		r.Get("/v1/statuses/{id}", s.getStatus)
		r.Delete("/v1/statuses/{id}", s.deleteStatus)
		s.pages.Mount(r)
	})
	s.router = r
}

func (s *server) notFound(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, blank(http.StatusNotFound, "no resource at "+r.URL.Path))
}

// methodNotAllowed answers 405 and lists in Allow the methods that have a
// route at the path, which chi leaves out once a custom handler is set.
func (s *server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if s.router.Match(chi.NewRouteContext(), m, r.URL.Path) {
			allowed = append(allowed, m)
		}
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	detail := fmt.Sprintf("%s is not allowed here; use %s", r.Method, strings.Join(allowed, " or "))
	writeProblem(w, blank(http.StatusMethodNotAllowed, detail))
}

// fail logs an unexpected error and answers 500 without its detail.
func (s *server) fail(w http.ResponseWriter, r *http.Request, op string, err error) {
	s.log.ErrorContext(r.Context(), "httpapi: "+op+" failed", "err", err,
		"request_id", middleware.GetReqID(r.Context()))
	writeProblem(w, internalError())
}
