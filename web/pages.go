package web

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"regexp"

	"starling.dev/starling"
	"starling.dev/starling/internal/atom"
)

//go:embed templates
var templateFS embed.FS

// pageNames are the templates that fill the layout's "main".
var pageNames = []string{"landing", "profile", "status", "error"}

// parseTemplates builds one template set per page: the layout, the post
// item and the page.
func parseTemplates(a *assets) (map[string]*template.Template, error) {
	base, err := template.New("layout.html").Funcs(template.FuncMap{"asset": a.path}).
		ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := base.Clone()
		if err == nil {
			t, err = t.ParseFS(templateFS, "templates/"+name+".html")
		}
		if err != nil {
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

// layoutView is what the layout shows around every page.
type layoutView struct {
	Title       string
	Description string
	Canonical   string
	Feed        string
	OG          *openGraph
	Script      bool
	Domain      string
}

// openGraph are the tags that make a shared link preview well.
type openGraph struct {
	Type, SiteName, Title, Description, URL, Published string
}

// postView is a post as a page lists it.
type postView struct {
	ID, Author, AuthorName, Text string
	ISO, Exact, Ago              string
	ShowAuthor                   bool
}

func (p *Pages) postView(post starling.Post, showAuthor bool) postView {
	now := p.cfg.Now()
	return postView{
		ID: post.ID, Author: post.Author, AuthorName: post.AuthorDisplayName(), Text: post.Text,
		ISO: machineTime(post.CreatedAt), Exact: exactTime(post.CreatedAt), Ago: ago(post.CreatedAt, now),
		ShowAuthor: showAuthor,
	}
}

// render executes a page into a buffer first, so that a failing template
// answers 500 instead of half a page.
func (p *Pages) render(w http.ResponseWriter, r *http.Request, status int, page string, v any) {
	var b bytes.Buffer
	if err := p.tmpl[page].ExecuteTemplate(&b, "layout", v); err != nil {
		p.log.ErrorContext(r.Context(), "web: render failed", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// errorView is the page of a refusal or failure.
type errorView struct {
	layoutView
	Heading, Message string
}

func (p *Pages) errorPage(w http.ResponseWriter, r *http.Request, status int, heading, msg string) {
	p.render(w, r, status, "error", errorView{
		layoutView: layoutView{Title: heading + " · Starling", Domain: p.cfg.Domain},
		Heading:    heading, Message: msg,
	})
}

func (p *Pages) notFound(w http.ResponseWriter, r *http.Request, msg string) {
	p.errorPage(w, r, http.StatusNotFound, "Not found", msg)
}

func (p *Pages) fail(w http.ResponseWriter, r *http.Request, op string, err error) {
	p.log.ErrorContext(r.Context(), "web: "+op+" failed", "err", err)
	p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong",
		"The page could not be made right now. Try again in a moment.")
}

// landingView is the start page.
type landingView struct {
	layoutView
	Posts []postView
}

// landing handles GET /.
func (p *Pages) landing(w http.ResponseWriter, r *http.Request) {
	v := landingView{layoutView: layoutView{
		Title:       "Starling · " + p.cfg.Domain,
		Description: "Microblogs on " + p.cfg.Domain + " that you follow from your Jabber client.",
		Domain:      p.cfg.Domain,
	}}
	if p.recent != nil {
		for _, post := range p.recent.Recent() {
			v.Posts = append(v.Posts, p.postView(post, true))
		}
	}
	p.render(w, r, http.StatusOK, "landing", v)
}

// statusIDRE is a post id: a ULID in its canonical upper-case form.
var statusIDRE = regexp.MustCompile(`^[0-7][0-9A-HJKMNP-TV-Z]{25}$`)

// profileView is an author's page.
type profileView struct {
	layoutView
	Profile              starling.Profile
	JID                  string
	RosterURI, FollowURI template.URL
	Posts                []postView
	Live                 bool   // the newest posts: the script adds new ones
	Newest               string // the newest post listed, where live updates resume
	Older                bool   // a page of older posts
	Next                 string // the next page's address, "" on the last
}

// profile handles GET /u/{username}?before=: the author's newest posts, or
// those older than the post id before.
func (p *Pages) profile(w http.ResponseWriter, r *http.Request) {
	username := r.PathValue("username")
	before := r.URL.Query().Get("before")
	if before != "" && !statusIDRE.MatchString(before) {
		p.errorPage(w, r, http.StatusBadRequest, "Bad request", "before must be a post id.")
		return
	}
	prof, ok := p.lookupAuthor(w, r, username)
	if !ok {
		return
	}
	posts, err := p.store.Statuses(r.Context(), username, before, p.cfg.PageSize)
	if err != nil {
		p.fail(w, r, "statuses", err)
		return
	}
	base := p.baseURL(r)
	v := profileView{
		layoutView: layoutView{
			Title:       prof.Name() + " (@" + username + ") · Starling",
			Description: describeProfile(prof, p.jid(username)),
			Canonical:   base + "/u/" + username,
			Feed:        "/u/" + username + ".atom",
			OG: &openGraph{Type: "profile", SiteName: "Starling · " + p.cfg.Domain, Title: prof.Name() + " (@" + username + ")",
				Description: describeProfile(prof, p.jid(username)), URL: base + "/u/" + username},
			Script: before == "",
			Domain: p.cfg.Domain,
		},
		Profile: prof, JID: p.jid(username),
		RosterURI: p.rosterURI(username), FollowURI: p.followURI(username),
		Live: before == "", Older: before != "",
	}
	for _, post := range posts {
		v.Posts = append(v.Posts, p.postView(post, false))
	}
	if len(posts) > 0 && before == "" {
		v.Newest = posts[0].ID
	}
	if len(posts) == p.cfg.PageSize {
		v.Next = "/u/" + username + "?before=" + url.QueryEscape(posts[len(posts)-1].ID)
	}
	p.render(w, r, http.StatusOK, "profile", v)
}

// describeProfile is the one-line description of an author for previews.
func describeProfile(prof starling.Profile, jid string) string {
	if prof.Bio != "" {
		return atom.Truncate(prof.Bio, 200)
	}
	return "Follow " + prof.Name() + " from any Jabber client: " + jid
}

// lookupAuthor reads the profile of {username}. If it returns false it has
// answered.
func (p *Pages) lookupAuthor(w http.ResponseWriter, r *http.Request, username string) (starling.Profile, bool) {
	if !starling.ValidUsername(username) {
		p.notFound(w, r, "There is no author by that name here.")
		return starling.Profile{}, false
	}
	prof, err := p.store.Profile(r.Context(), username)
	switch {
	case errors.Is(err, starling.ErrUnknownUser):
		p.notFound(w, r, "There is no author by that name here.")
		return starling.Profile{}, false
	case err != nil:
		p.fail(w, r, "profile", err)
		return starling.Profile{}, false
	}
	return prof, true
}

// statusView is one post's page.
type statusView struct {
	layoutView
	Post      postView
	JID       string
	RosterURI template.URL
}

// status handles GET /u/{username}/statuses/{id}.
func (p *Pages) status(w http.ResponseWriter, r *http.Request) {
	username, id := r.PathValue("username"), r.PathValue("id")
	if !starling.ValidUsername(username) || !statusIDRE.MatchString(id) {
		p.notFound(w, r, "There is no such post.")
		return
	}
	post, found, err := p.store.StatusByID(r.Context(), id)
	switch {
	case err != nil:
		p.fail(w, r, "status", err)
		return
	case !found || post.Author != username:
		p.notFound(w, r, "There is no such post: it may have been deleted.")
		return
	}
	pv := p.postView(post, true)
	url := p.baseURL(r) + "/u/" + username + "/statuses/" + id
	title := pv.AuthorName + " (@" + username + ")"
	p.render(w, r, http.StatusOK, "status", statusView{
		layoutView: layoutView{
			Title:       title + ": “" + atom.Truncate(post.Text, 60) + "” · Starling",
			Description: atom.Truncate(post.Text, 200),
			Canonical:   url,
			Feed:        "/u/" + username + ".atom",
			OG: &openGraph{Type: "article", SiteName: "Starling · " + p.cfg.Domain, Title: title,
				Description: atom.Truncate(post.Text, 200), URL: url, Published: pv.ISO},
			Domain: p.cfg.Domain,
		},
		Post: pv, JID: p.jid(username), RosterURI: p.rosterURI(username),
	})
}

// jid is an author's bare JID.
func (p *Pages) jid(username string) string { return username + "@" + p.cfg.Domain }

// rosterURI is the xmpp: URI (RFC 5122, XEP-0147) that asks a Jabber
// client to add the author to its roster. Built from a checked username
// and domain only, so html/template may let the scheme through.
func (p *Pages) rosterURI(username string) template.URL {
	return template.URL("xmpp:" + p.jid(username) + "?roster")
}

// followURI is the xmpp: URI that opens a message "follow <username>" to
// the service.
func (p *Pages) followURI(username string) template.URL {
	return template.URL("xmpp:" + p.cfg.Domain + "?message;body=follow%20" + username)
}
