package atom_test

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"starling.dev/starling"
	"starling.dev/starling/internal/atom"
	"starling.dev/starling/xmpp"
)

var post = starling.Post{
	ID: "01JAAAAAAAAAAAAAAAAAAAAAAA", Author: "alice", AuthorName: `Alice "A" <&>`,
	Text:      "<b>bold</b> & \"quoted\"\r\nline two\x01 " + strings.Repeat("é", 90),
	CreatedAt: time.Date(2025, 3, 14, 15, 9, 26, 535_000_000, time.UTC),
}

// TestEntryIsTheDeliveryEntry: the entry is byte for byte the one the atom
// delivery payload carries, so a feed reader and a Jabber bot see one
// format.
func TestEntryIsTheDeliveryEntry(t *testing.T) {
	entry := atom.AppendEntry(nil, atom.Entry{Domain: "microblog.example.org"}, post)
	stanza := xmpp.NewDelivery("microblog.example.org", xmpp.PayloadAtom, post).AppendTo(nil, "bob@example.org")
	if !bytes.Contains(stanza, entry) {
		t.Fatalf("the delivery's entry differs:\nentry:    %s\ndelivery: %s", entry, stanza)
	}
}

func TestEntryParses(t *testing.T) {
	link := "https://example.org/u/alice/statuses/" + post.ID + "?a=1&b=2"
	raw := atom.AppendEntry(nil, atom.Entry{Domain: "microblog.example.org", Link: link}, post)
	var e struct {
		XMLName   xml.Name `xml:"http://www.w3.org/2005/Atom entry"`
		ID        string   `xml:"id"`
		Title     string   `xml:"title"`
		Published string   `xml:"published"`
		Link      struct {
			Rel  string `xml:"rel,attr"`
			Href string `xml:"href,attr"`
		} `xml:"link"`
		Author struct {
			Name string `xml:"name"`
			URI  string `xml:"uri"`
		} `xml:"author"`
		Content string `xml:"content"`
	}
	if err := xml.Unmarshal(raw, &e); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	wantText := strings.ReplaceAll(post.Text, "\x01", "")
	switch {
	case e.ID != "tag:microblog.example.org,2025-03-14:post:"+post.ID:
		t.Errorf("id %q", e.ID)
	case e.Content != wantText:
		t.Errorf("content %q, want %q", e.Content, wantText)
	case e.Link.Rel != "alternate" || e.Link.Href != link:
		t.Errorf("link %+v", e.Link)
	case e.Author.Name != post.AuthorName || e.Author.URI != "xmpp:alice@microblog.example.org":
		t.Errorf("author %+v", e.Author)
	case e.Published != "2025-03-14T15:09:26.535Z":
		t.Errorf("published %q", e.Published)
	case e.Title != strings.ReplaceAll(atom.Truncate(post.Text, atom.TitleChars), "\x01", "") || !strings.HasSuffix(e.Title, "…"):
		t.Errorf("title %q", e.Title)
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"ééééé", 3, "ééé…"},
	} {
		if got := atom.Truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
