package web

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"starling.dev/starling"
)

// Store is what the pages read: accounts.RedisStore implements it.
type Store interface {
	// Profile returns an author's public record; starling.ErrUnknownUser
	// if there is none.
	Profile(ctx context.Context, username string) (starling.Profile, error)
	// Statuses returns up to n of the author's posts older than before
	// ("" for the newest), newest first.
	Statuses(ctx context.Context, username, before string, n int) ([]starling.Post, error)
	// StatusByID returns a post of some author's history, or false.
	StatusByID(ctx context.Context, id string) (starling.Post, bool, error)
}

// RecentPosts are the latest posts across authors, newest first, for the
// landing page. httpapi.Hub implements it from the stream of posts.
type RecentPosts interface {
	Recent() []starling.Post
}

// Router is where Mount adds the pages' routes; chi.Router is one.
type Router interface {
	Get(pattern string, h http.HandlerFunc)
}

// Config configures the pages.
type Config struct {
	// Domain is the XMPP domain of authors' JIDs; required.
	Domain string
	// PublicURL is the address the pages are reached at, such as
	// https://microblog.example.org, used for the absolute links of the
	// feed and of Open Graph tags. Empty means the request's own host,
	// over https when the request came over TLS and http otherwise.
	PublicURL string
	// PageSize is how many posts an author's page lists; zero means 20.
	PageSize int
	// FeedSize is how many posts the Atom feed holds; zero means 20.
	FeedSize int
	// Logger receives unexpected errors; nil discards them.
	Logger *slog.Logger
	// Now is the clock of relative times; nil means time.Now.
	Now func() time.Time
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if !validDomain(c.Domain) {
		return fmt.Errorf("web: Domain %q is not a domain", c.Domain)
	}
	if c.PublicURL != "" {
		if err := CheckPublicURL(c.PublicURL); err != nil {
			return err
		}
	}
	if c.PageSize < 0 || c.FeedSize < 0 {
		return errors.New("web: PageSize and FeedSize must not be negative")
	}
	return nil
}

// CheckPublicURL reports whether s can be Config.PublicURL: an absolute
// http or https URL with no query, fragment or user.
func CheckPublicURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("web: public URL %q must be like https://microblog.example.org", s)
	}
	return nil
}

// validDomain accepts what can stand after the @ of a JID and inside an
// xmpp: URI unescaped: letters, digits, dots and hyphens (Unicode letters
// included), no spaces or delimiters.
func validDomain(d string) bool {
	if d == "" || len(d) > 255 {
		return false
	}
	for _, r := range d {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(`"#%&'/:;<>?@[\]^`+"`{|}", r) {
			return false
		}
	}
	return true
}

// Pages serves the web face. Safe for concurrent use.
type Pages struct {
	store  Store
	recent RecentPosts
	cfg    Config
	log    *slog.Logger
	tmpl   map[string]*template.Template
	assets *assets
}

// New returns the pages over store; recent may be nil (the landing page then
// lists no posts).
func New(store Store, recent RecentPosts, cfg Config) (*Pages, error) {
	if store == nil {
		return nil, errors.New("web: Store is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = defaultPageSize
	}
	if cfg.FeedSize == 0 {
		cfg.FeedSize = defaultPageSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	a, err := loadAssets()
	if err != nil {
		return nil, err
	}
	p := &Pages{store: store, recent: recent, cfg: cfg, log: cfg.Logger, assets: a}
	if p.tmpl, err = parseTemplates(a); err != nil {
		return nil, err
	}
	return p, nil
}

// defaultPageSize is the posts of one page and of the feed.
const defaultPageSize = 20

// Mount adds the pages' routes to r.
func (p *Pages) Mount(r Router) {
	r.Get("/", p.secure(p.landing))
	r.Get("/u/{username}", p.secure(p.profile))
	r.Get("/u/{username}.atom", p.secure(p.feed))
	r.Get("/u/{username}/qr.svg", p.secure(p.qr))
	r.Get("/u/{username}/statuses/{id}", p.secure(p.status))
	r.Get("/assets/{name}", p.secure(p.asset))
}

// contentSecurityPolicy allows scripts, styles, images and connections
// from our origin only, and nothing inline: a post that slipped markup
// past the escaping could still run nothing.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// secure sets the security headers of every answer.
func (p *Pages) secure(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "strict-origin-when-cross-origin")
		hd.Set("X-Frame-Options", "DENY")
		h(w, r)
	}
}

// baseURL is the absolute address of the site, without a trailing slash.
func (p *Pages) baseURL(r *http.Request) string {
	if p.cfg.PublicURL != "" {
		return p.cfg.PublicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
