package web

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	qrcode "github.com/skip2/go-qrcode"
	"golang.org/x/net/html"

	"starling.dev/starling"
	"starling.dev/starling/accounts"
	"starling.dev/starling/internal/atom"
	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/subscribers"
)

const (
	testDomain = "microblog.example.org"
	publicURL  = "https://social.example.org"
	markup     = `<script>alert("x")</script><b>bold</b> & <img src=x onerror=alert(1)>`
)

// testNow is the pages' clock; posts are made before it.
var testNow = time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC)

// site is the pages over a real Redis store, behind a real HTTP server.
type site struct {
	url    string
	store  *accounts.RedisStore
	recent recentList
}

// recentList is a fixed list of latest posts.
type recentList []starling.Post

func (l *recentList) Recent() []starling.Post { return *l }

func newSite(t *testing.T, edit func(*Config)) *site {
	t.Helper()
	rdb := testenv.StartRedis(t).Client(t)
	graph := subscribers.NewRedisStore(rdb, testenv.Prefix(t))
	acc, err := accounts.NewRedisStore(rdb, graph, accounts.RedisConfig{Prefix: testenv.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	s := &site{store: acc}
	cfg := Config{Domain: testDomain, PublicURL: publicURL, Now: func() time.Time { return testNow }}
	if edit != nil {
		edit(&cfg)
	}
	p, err := New(acc, &s.recent, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	p.Mount(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// author creates an author with a bio and n posts, one a minute, the last
// three minutes before testNow; it returns the posts oldest first.
func (s *site) author(t *testing.T, name, display, bio string, n int) []starling.Post {
	t.Helper()
	ctx := context.Background()
	if err := s.store.CreateUser(ctx, name, display, "hash-"+name, testNow.Add(-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.UpdateProfile(ctx, name, nil, &bio); err != nil {
		t.Fatal(err)
	}
	var posts []starling.Post
	for i := range n {
		at := testNow.Add(-time.Duration(n-i+2) * time.Minute)
		p := starling.Post{ID: ulidAt(at, i), Author: name, AuthorName: display, Text: fmt.Sprintf("post %d %s", i, markup), CreatedAt: at}
		if err := s.store.RecordPost(ctx, p); err != nil {
			t.Fatal(err)
		}
		posts = append(posts, p)
	}
	return posts
}

// ulidAt makes a ULID-shaped id that sorts by time (and by i within a
// millisecond).
func ulidAt(at time.Time, i int) string {
	const digits = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	ms := uint64(at.UnixMilli())
	b := make([]byte, 26)
	for k := 9; k >= 0; k-- {
		b[k] = digits[ms%32]
		ms /= 32
	}
	for k := 10; k < 26; k++ {
		b[k] = '0'
	}
	b[25] = digits[i%32]
	b[24] = digits[(i/32)%32]
	return string(b)
}

// get fetches a path and returns the answer and its body.
func get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// checkSafePage asserts what every HTML page must be: escaped, with the
// strict policy, nothing inline and nothing from elsewhere, and the
// landmarks and metadata of an accessible phone-sized page.
func checkSafePage(t *testing.T, resp *http.Response, body string) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("Content-Security-Policy %q allows inline code", csp)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no X-Content-Type-Options: nosniff")
	}
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		seen[n.Data] = true
		attr := map[string]string{}
		for _, a := range n.Attr {
			attr[a.Key] = a.Val
			if a.Key == "style" || strings.HasPrefix(a.Key, "on") {
				t.Errorf("<%s> has an inline %s attribute", n.Data, a.Key)
			}
		}
		switch n.Data {
		case "style":
			t.Error("page has a <style> element")
		case "script":
			if !strings.HasPrefix(attr["src"], "/assets/") || n.FirstChild != nil {
				t.Errorf("inline or foreign script: %v", n.Attr)
			}
		case "img":
			if !strings.HasPrefix(attr["src"], "/") || attr["alt"] == "" {
				t.Errorf("image from elsewhere or without alt text: %v", n.Attr)
			}
		case "link":
			if rel := attr["rel"]; (rel == "stylesheet" || rel == "icon") && !strings.HasPrefix(attr["href"], "/assets/") {
				t.Errorf("%s from elsewhere: %s", rel, attr["href"])
			}
		case "html":
			if attr["lang"] != "en" {
				t.Errorf("<html lang=%q>", attr["lang"])
			}
		case "meta":
			if attr["name"] == "viewport" && attr["content"] != "width=device-width, initial-scale=1" {
				t.Errorf("viewport %q", attr["content"])
			}
		case "b":
			t.Error("markup from a post became an element")
		}
	}
	for _, want := range []string{"header", "main", "footer", "h1", "meta"} {
		if !seen[want] {
			t.Errorf("page has no <%s>", want)
		}
	}
}

func TestProfilePage(t *testing.T) {
	s := newSite(t, nil)
	posts := s.author(t, "alice", `Alice <em>A</em>`, "Writes about <birds> & \"XMPP\"", 3)
	resp, body := get(t, s.url+"/u/alice")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /u/alice = %d\n%s", resp.StatusCode, body)
	}
	checkSafePage(t, resp, body)
	for _, want := range []string{
		`<h1 id="name">Alice &lt;em&gt;A&lt;/em&gt;</h1>`,
		`Writes about &lt;birds&gt; &amp; &#34;XMPP&#34;`,
		`alice@microblog.example.org`,
		`href="xmpp:alice@microblog.example.org?roster"`,
		`href="xmpp:microblog.example.org?message;body=follow%20alice"`,
		`<img class="qr" src="/u/alice/qr.svg"`,
		`alt="QR code of xmpp:alice@microblog.example.org?roster`,
		`<dt>Followers</dt><dd>0</dd>`,
		`<dt>Posts</dt><dd>3</dd>`,
		`&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt; &amp;`,
		`<time datetime="` + posts[2].CreatedAt.Format(time.RFC3339Nano) + `" title="2025-03-14 14:57 UTC">3 min ago</time>`,
		`data-events="/v1/users/alice/events"`,
		`data-newest="` + posts[2].ID + `"`,
		`<script src="/assets/live.`,
		`<link rel="alternate" type="application/atom+xml" href="/u/alice.atom">`,
		`<meta property="og:url" content="` + publicURL + `/u/alice">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	// Newest first.
	i2, i0 := strings.Index(body, `id="p-`+posts[2].ID), strings.Index(body, `id="p-`+posts[0].ID)
	if i2 < 0 || i0 < 0 || i2 > i0 {
		t.Errorf("posts not newest first (%d, %d)", i2, i0)
	}
	if strings.Contains(body, "Load older posts") {
		t.Error("a load-older link on the only page")
	}
}

func TestProfilePagination(t *testing.T) {
	s := newSite(t, func(c *Config) { c.PageSize = 4 })
	posts := s.author(t, "bob", "", "", 6)
	_, body := get(t, s.url+"/u/bob")
	next := `/u/bob?before=` + posts[2].ID
	if !strings.Contains(body, `<a href="`+next+`" rel="next">Load older posts</a>`) {
		t.Fatalf("no load-older link to %s:\n%s", next, body)
	}
	resp, body := get(t, s.url+next)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", next, resp.StatusCode)
	}
	for i, p := range posts {
		if has := strings.Contains(body, `id="p-`+p.ID+`"`); has != (i < 2) {
			t.Errorf("older page: post %d shown = %v", i, has)
		}
	}
	if strings.Contains(body, "Load older posts") || strings.Contains(body, "live.") || strings.Contains(body, "data-events") {
		t.Error("the last page of older posts offers more, or live updates")
	}
	if resp, _ := get(t, s.url+"/u/bob?before=nope"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad before = %d, want 400", resp.StatusCode)
	}
}

func TestNotFoundPages(t *testing.T) {
	s := newSite(t, nil)
	alice := s.author(t, "alice", "Alice", "", 1)
	s.author(t, "carol", "Carol", "", 0)
	for _, path := range []string{
		"/u/nobody", "/u/Not-Valid", "/u/nobody.atom", "/u/alice/statuses/" + alice[0].ID[:25] + "Z",
		"/u/carol/statuses/" + alice[0].ID, // another author's post
		"/u/alice/statuses/nope", "/assets/style.css", "/u/Bad!/qr.svg",
	} {
		resp, body := get(t, s.url+path)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
			continue
		}
		checkSafePage(t, resp, body)
	}
}

func TestStatusPage(t *testing.T) {
	s := newSite(t, nil)
	posts := s.author(t, "alice", "Alice", "", 2)
	p := posts[1]
	resp, body := get(t, s.url+"/u/alice/statuses/"+p.ID)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status page = %d", resp.StatusCode)
	}
	checkSafePage(t, resp, body)
	for _, want := range []string{
		`<meta property="og:type" content="article">`,
		`<meta property="og:title" content="Alice (@alice)">`,
		`<meta property="og:description" content="post 1 &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;`,
		`<meta property="og:url" content="` + publicURL + `/u/alice/statuses/` + p.ID + `">`,
		`<meta property="article:published_time" content="` + p.CreatedAt.Format(time.RFC3339Nano) + `">`,
		`<link rel="canonical" href="` + publicURL + `/u/alice/statuses/` + p.ID + `">`,
		`href="xmpp:alice@microblog.example.org?roster"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("post page lacks %s", want)
		}
	}
}

// atomFeed is what the test reads of a feed (RFC 4287).
type atomFeed struct {
	XMLName xml.Name `xml:"http://www.w3.org/2005/Atom feed"`
	ID      string   `xml:"id"`
	Title   string   `xml:"title"`
	Updated string   `xml:"updated"`
	Links   []struct {
		Rel  string `xml:"rel,attr"`
		Type string `xml:"type,attr"`
		Href string `xml:"href,attr"`
	} `xml:"link"`
	Author struct {
		Name string `xml:"name"`
		URI  string `xml:"uri"`
	} `xml:"author"`
	Entries []struct {
		ID        string `xml:"id"`
		Title     string `xml:"title"`
		Published string `xml:"published"`
		Updated   string `xml:"updated"`
		Link      struct {
			Href string `xml:"href,attr"`
		} `xml:"link"`
		Content struct {
			Type string `xml:"type,attr"`
			Text string `xml:",chardata"`
		} `xml:"content"`
	} `xml:"entry"`
}

func TestAtomFeed(t *testing.T) {
	s := newSite(t, func(c *Config) { c.FeedSize = 3; c.PublicURL = "" })
	posts := s.author(t, "alice", "Alice & co", "bio", 4)
	resp, body := get(t, s.url+"/u/alice.atom")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/atom+xml; charset=utf-8" {
		t.Fatalf("feed = %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var f atomFeed
	if err := xml.Unmarshal([]byte(body), &f); err != nil {
		t.Fatalf("feed does not parse: %v\n%s", err, body)
	}
	if f.ID != "tag:microblog.example.org,2025-03-13:author:alice" || f.Title != "Alice & co (@alice)" ||
		f.Updated != posts[3].CreatedAt.Format(time.RFC3339Nano) || f.Author.URI != "xmpp:alice@microblog.example.org" {
		t.Errorf("feed head: %+v", f)
	}
	// Without a public URL the links are the request's own host.
	self := false
	for _, l := range f.Links {
		self = self || (l.Rel == "self" && l.Href == s.url+"/u/alice.atom" && l.Type == "application/atom+xml")
	}
	if !self {
		t.Errorf("no self link to %s: %+v", s.url+"/u/alice.atom", f.Links)
	}
	if len(f.Entries) != 3 {
		t.Fatalf("%d entries, want 3", len(f.Entries))
	}
	for i, e := range f.Entries {
		p := posts[3-i]
		if e.ID != string(atom.AppendID(nil, testDomain, p)) || e.Content.Text != p.Text || e.Content.Type != "text" ||
			e.Updated == "" || e.Title == "" || e.Link.Href != s.url+"/u/alice/statuses/"+p.ID {
			t.Errorf("entry %d: %+v", i, e)
		}
	}
	// Each entry is the one the shared writer makes.
	entry := atom.AppendEntry(nil, atom.Entry{Domain: testDomain, Link: s.url + "/u/alice/statuses/" + posts[3].ID}, posts[3])
	if !strings.Contains(body, string(entry)) {
		t.Error("the feed's entry is not the shared entry")
	}
}

func TestQRCode(t *testing.T) {
	s := newSite(t, nil)
	resp, body := get(t, s.url+"/u/alice/qr.svg")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/svg+xml" {
		t.Fatalf("qr = %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var svg struct {
		XMLName xml.Name `xml:"http://www.w3.org/2000/svg svg"`
		Path    struct {
			D string `xml:"d,attr"`
		} `xml:"path"`
	}
	if err := xml.Unmarshal([]byte(body), &svg); err != nil {
		t.Fatal(err)
	}
	q, err := qrcode.New("xmpp:alice@microblog.example.org?roster", qrcode.Medium)
	if err != nil {
		t.Fatal(err)
	}
	dark := 0
	for _, row := range q.Bitmap() {
		for _, d := range row {
			if d {
				dark++
			}
		}
	}
	if n := strings.Count(svg.Path.D, "M"); n != dark || dark == 0 {
		t.Errorf("%d modules drawn, the code has %d", n, dark)
	}
	etag := resp.Header.Get("ETag")
	if resp, _ := get(t, s.url+"/u/alice/qr.svg", "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation = %d, want 304", resp.StatusCode)
	}
}

func TestAssets(t *testing.T) {
	s := newSite(t, nil)
	s.author(t, "alice", "Alice", "", 1)
	_, page := get(t, s.url+"/u/alice")
	links := regexp.MustCompile(`"(/assets/[^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(links) != 3 { // favicon, style sheet, script
		t.Fatalf("asset links: %v", links)
	}
	for _, l := range links {
		resp, body := get(t, s.url+l[1])
		if resp.StatusCode != http.StatusOK || body == "" {
			t.Fatalf("GET %s = %d", l[1], resp.StatusCode)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != assetCacheControl {
			t.Errorf("%s Cache-Control %q", l[1], cc)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") && !strings.HasPrefix(ct, "text/javascript") && ct != "image/svg+xml" {
			t.Errorf("%s Content-Type %q", l[1], ct)
		}
		again, _ := get(t, s.url+l[1], "If-None-Match", resp.Header.Get("ETag"))
		if again.StatusCode != http.StatusNotModified {
			t.Errorf("%s revalidation = %d, want 304", l[1], again.StatusCode)
		}
	}
	// The script adds text with textContent, never as markup.
	js, err := staticFS.ReadFile("static/live.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(string(js), bad) {
			t.Errorf("live.js uses %s", bad)
		}
	}
}

func TestLandingPage(t *testing.T) {
	s := newSite(t, nil)
	posts := s.author(t, "alice", "Alice", "", 2)
	s.recent = recentList{posts[1], posts[0]}
	resp, body := get(t, s.url+"/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d", resp.StatusCode)
	}
	checkSafePage(t, resp, body)
	for _, want := range []string{
		"<code>follow name</code> to <code>microblog.example.org</code>",
		`<a href="/u/alice">Alice</a>`,
		`id="p-` + posts[1].ID + `"`,
		"post 0 &lt;script&gt;",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("landing page lacks %s", want)
		}
	}
	if strings.Contains(body, "<script") {
		t.Error("the landing page loads a script")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{},
		{Domain: "a b"},
		{Domain: "x?y"},
		{Domain: testDomain, PublicURL: "social.example.org"},
		{Domain: testDomain, PublicURL: "ftp://social.example.org"},
		{Domain: testDomain, PublicURL: "https://social.example.org/?x=1"},
		{Domain: testDomain, PageSize: -1},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	for _, c := range []Config{{Domain: testDomain}, {Domain: "münchen.example", PublicURL: "http://127.0.0.1:8080/"}} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
}
