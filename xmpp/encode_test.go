package xmpp

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"starling.dev/starling/internal/atom"

	"starling.dev/starling"
	"starling.dev/starling/fanout"
)

type decoded struct {
	XMLName  xml.Name `xml:"message"`
	Type     string   `xml:"type,attr"`
	From     string   `xml:"from,attr"`
	To       string   `xml:"to,attr"`
	ID       string   `xml:"id,attr"`
	Body     string   `xml:"body"`
	OriginID struct {
		ID string `xml:"id,attr"`
	} `xml:"urn:xmpp:sid:0 origin-id"`
}

// decodeOne parses b as exactly one well-formed element.
func decodeOne(t testing.TB, b []byte) decoded {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	var m decoded
	if err := d.Decode(&m); err != nil {
		t.Fatalf("stanza is not well-formed: %v\n%s", err, b)
	}
	if tok, err := d.Token(); err != io.EOF {
		t.Fatalf("trailing data after the stanza: %v %v\n%s", tok, err, b)
	}
	return m
}

// payloads are the profiles every test of the rendering runs with.
var payloads = []Payload{PayloadMinimal, PayloadAtom}

func TestDeliveryShape(t *testing.T) {
	p := starling.Post{ID: "01JABCDEF", Author: "alice", Text: "a < b & c > d \"q\" 'a'", CreatedAt: time.Now()}
	for _, payload := range payloads {
		b := NewDelivery("microblog.example.org", payload, p).AppendTo(nil, "bob@example.org")
		m := decodeOne(t, b)
		want := decoded{Type: "chat", From: "alice@microblog.example.org", To: "bob@example.org", ID: "01JABCDEF", Body: p.Text}
		want.OriginID.ID = p.ID
		want.XMLName = m.XMLName
		if m != want {
			t.Fatalf("%s: got %+v\nwant %+v", payload, m, want)
		}
	}
}

// TestMinimalPayload: the default delivery is the DESIGN contract's chat
// message, byte for byte: a body and an origin-id, nothing else.
func TestMinimalPayload(t *testing.T) {
	p := starling.Post{ID: "01JMIN", Author: "alice", AuthorName: "Alice", Text: "tea & cake", CreatedAt: time.Now()}
	want := `<message type="chat" from="alice@mb.example" to="bob@example.org" id="01JMIN"><body>tea &amp; cake</body>` +
		`<origin-id xmlns="urn:xmpp:sid:0" id="01JMIN"/></message>`
	for _, payload := range []Payload{PayloadMinimal, ""} {
		if got := string(NewDelivery("mb.example", payload, p).AppendTo(nil, "bob@example.org")); got != want {
			t.Errorf("payload %q:\n%s\nwant\n%s", payload, got, want)
		}
	}
	atom := NewDelivery("mb.example", PayloadAtom, p).AppendTo(nil, "bob@example.org")
	if !bytes.Contains(atom, []byte(`<entry xmlns="http://www.w3.org/2005/Atom">`)) {
		t.Errorf("atom payload without an Atom entry:\n%s", atom)
	}
}

func TestParsePayload(t *testing.T) {
	for _, s := range []string{"minimal", "atom"} {
		if p, err := ParsePayload(s); err != nil || string(p) != s {
			t.Errorf("ParsePayload(%q) = %q, %v", s, p, err)
		}
	}
	for _, s := range []string{"", "Atom", "full", "minimal "} {
		if _, err := ParsePayload(s); err == nil || !strings.Contains(err.Error(), "use minimal or atom") {
			t.Errorf("ParsePayload(%q): %v, want a refusal naming the profiles", s, err)
		}
	}
}

func TestTextEscaping(t *testing.T) {
	cases := []struct{ in, body string }{
		{"plain", "plain"},
		{"</body></message><message to='x'>", "</body></message><message to='x'>"},
		{"]]>", "]]>"},
		{"cr\rlf\ntab\t", "cr\rlf\ntab\t"},
		{"nul\x00 bell\a esc\x1b", "nul bell esc"},
		{"nonchar \uFFFE\uFFFF end", "nonchar  end"},
		{"bad utf8 \xff\xfe end", "bad utf8  end"},
		{"replacement \uFFFD kept", "replacement \uFFFD kept"},
		{"astral 🐦", "astral 🐦"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			for _, payload := range payloads {
				m := decodeOne(t, NewDelivery("d.example", payload, starling.Post{ID: "x", Author: "a", Text: c.in}).AppendTo(nil, "b@e"))
				if m.Body != c.body {
					t.Fatalf("%s: body %q, want %q", payload, m.Body, c.body)
				}
			}
			if starling.CleanXMLText(c.in) != c.body {
				t.Fatalf("SanitizeText %q, want %q", starling.CleanXMLText(c.in), c.body)
			}
		})
	}
}

func TestWriteToMatchesAppendTo(t *testing.T) {
	d := NewDelivery("d.example", PayloadAtom, starling.Post{ID: "x", Author: "a", Text: "t"})
	for _, to := range []string{"bob@example.org", `o'neil"&<>@example.org`, "ünïcode@example.org"} {
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		if err := d.writeTo(w, []byte(to)); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		if want := d.AppendTo(nil, to); !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("WriteTo %q:\n%s\nAppendTo:\n%s", to, buf.Bytes(), want)
		}
		if m := decodeOne(t, buf.Bytes()); m.To != to {
			t.Fatalf("to %q, want %q", m.To, to)
		}
	}
}

// TestDeliveryWritesWithoutAllocating: writing a rendered delivery costs
// no allocation per recipient, whether the address needs escaping or not,
// and a whole chunk of a decoded batch, with its ping, costs none either.
func TestDeliveryWritesWithoutAllocating(t *testing.T) {
	post := starling.Post{ID: "01JALLOC", Author: "alice", Text: "hello", CreatedAt: time.Now()}
	w := bufio.NewWriterSize(io.Discard, 64<<10)
	for _, payload := range payloads {
		d := NewDelivery("microblog.example.org", payload, post)
		for _, to := range []string{
			"bob@example.org",
			"o'neil&sons@example.org",
			"ünïcödé-with-a-rather-long-localpart-to-escape@example.org",
		} {
			jid := []byte(to)
			if n := testing.AllocsPerRun(1000, func() { _ = d.writeTo(w, jid) }); n != 0 {
				t.Errorf("%s: writeTo %s: %v allocations, want 0", payload, to, n)
			}
		}
	}
	d := NewDelivery("microblog.example.org", PayloadMinimal, post)

	msg, err := fanout.Batch{Post: post, To: strings.Fields(strings.Repeat("carol@example.org ", fanout.BatchSize))}.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := fanout.DecodeBatch(msg)
	if err != nil {
		t.Fatal(err)
	}
	o := &outgoing{c: &Component{pingHead: renderPingHead("microblog.example.org", "example.org")}, msg: d}
	n := testing.AllocsPerRun(100, func() { _ = o.writeStanzas(w, batch, "stl-ping-1") })
	if n != 0 {
		t.Errorf("writing a chunk of %d: %v allocations, want 0", batch.Len(), n)
	}
}

// FuzzDelivery: in every payload profile, any post text (also as the
// author's name, which the Atom entry carries) and any recipient yield
// exactly one well-formed stanza whose body decodes back to the text as
// accepted (SanitizeText of it, which is the text itself for everything the
// API accepts) and whose address decodes back to the recipient.
func FuzzDelivery(f *testing.F) {
	for _, s := range []string{"", "hello", "</body></message>", "a\x00b", "\r\n", "]]>", "\xff", "🐦", "&amp;"} {
		f.Add(s, "bob@example.org")
	}
	f.Fuzz(func(t *testing.T, text, to string) {
		for _, payload := range payloads {
			d := NewDelivery("microblog.example.org", payload, starling.Post{ID: "01J", Author: "alice", AuthorName: text, Text: text})
			m := decodeOne(t, d.AppendTo(nil, to))
			if want := starling.CleanXMLText(text); m.Body != want {
				t.Fatalf("%s: body %q, want %q", payload, m.Body, want)
			}
			if want := starling.CleanXMLText(to); m.To != want {
				t.Fatalf("%s: to %q, want %q", payload, m.To, want)
			}
		}
		if utf8.ValidString(text) && !strings.ContainsFunc(text, func(r rune) bool { return !starling.IsXMLChar(r) }) && starling.CleanXMLText(text) != text {
			t.Fatalf("valid text %q was changed", text)
		}
	})
}

// BenchmarkEncodeDelivery decodes one batch of 500 recipients as the send
// stage receives it from JetStream, and writes every stanza through a
// buffered writer, as DeliverBatch does: 0 allocations per recipient. The
// post is 156 characters, in each payload profile.
func BenchmarkEncodeDelivery(b *testing.B) {
	for _, payload := range payloads {
		b.Run(string(payload), func(b *testing.B) { benchmarkEncodeDelivery(b, payload) })
	}
}

func benchmarkEncodeDelivery(b *testing.B, payload Payload) {
	post := starling.Post{ID: "01JD4Z8J3E3Q8Y7N5W2XK9V6TB", Author: "alice", AuthorName: "Alice", Text: strings.Repeat("a post of moderate length ", 6), CreatedAt: time.Now()}
	to := make([]string, fanout.BatchSize)
	for i := range to {
		to[i] = "follower" + strings.Repeat("x", i%7) + "@example.org"
	}
	msg, err := fanout.Batch{Post: post, To: to}.Encode(nil)
	if err != nil {
		b.Fatal(err)
	}
	batch, err := fanout.DecodeBatch(msg)
	if err != nil {
		b.Fatal(err)
	}
	d := NewDelivery("microblog.example.org", payload, batch.Post)
	w := bufio.NewWriterSize(io.Discard, 64<<10)
	write := func(jid []byte) error { return d.writeTo(w, jid) }
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := batch.Recipients(write); err != nil {
			b.Fatal(err)
		}
		w.Flush()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(to)), "ns/stanza")
	b.ReportMetric(float64(len(d.AppendTo(nil, to[0]))), "B/stanza")
}

func TestDeliveryAtomEntry(t *testing.T) {
	created := time.Date(2026, 11, 26, 7, 8, 9, 0, time.UTC)
	p := starling.Post{ID: "01JATOM", Author: "alice", AuthorName: "Alice <A&B>", Text: strings.Repeat("ab ", 40) + "& end", CreatedAt: created}
	b := NewDelivery("mb.example", PayloadAtom, p).AppendTo(nil, "bob@example.org")
	var m struct {
		Body  string `xml:"body"`
		Entry struct {
			ID        string `xml:"id"`
			Title     string `xml:"title"`
			Published string `xml:"published"`
			Content   struct {
				Type string `xml:"type,attr"`
				Text string `xml:",chardata"`
			} `xml:"content"`
			Author struct {
				Name string `xml:"name"`
				URI  string `xml:"uri"`
			} `xml:"author"`
		} `xml:"http://www.w3.org/2005/Atom entry"`
	}
	if err := xml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	e := m.Entry
	if m.Body != p.Text || e.Content.Text != p.Text || e.Content.Type != "text" {
		t.Errorf("body %q, content %q (%s)", m.Body, e.Content.Text, e.Content.Type)
	}
	if e.ID != "tag:mb.example,2026-11-26:post:01JATOM" || e.Published != "2026-11-26T07:08:09Z" {
		t.Errorf("id %q published %q", e.ID, e.Published)
	}
	if e.Author.Name != "Alice <A&B>" || e.Author.URI != "xmpp:alice@mb.example" {
		t.Errorf("author %+v", e.Author)
	}
	if n := utf8.RuneCountInString(e.Title); n != atom.TitleChars+1 || !strings.HasSuffix(e.Title, "…") {
		t.Errorf("title %q (%d characters)", e.Title, n)
	}
}

// TestDeliveryRetraction: a retraction has its own payload, the same in
// every profile.
func TestDeliveryRetraction(t *testing.T) {
	p := starling.Post{ID: "01JRETRACT", Author: "alice", Retracts: "01JGONE"}
	b := NewDelivery("mb.example", PayloadAtom, p).AppendTo(nil, "bob@example.org")
	if minimal := NewDelivery("mb.example", PayloadMinimal, p).AppendTo(nil, "bob@example.org"); !bytes.Equal(b, minimal) {
		t.Fatalf("retractions differ between profiles:\n%s\n%s", b, minimal)
	}
	var m struct {
		ID      string `xml:"id,attr"`
		Body    string `xml:"body"`
		Retract struct {
			ID string `xml:"id,attr"`
		} `xml:"urn:xmpp:message-retract:1 retract"`
		Fallback struct {
			For string `xml:"for,attr"`
		} `xml:"urn:xmpp:fallback:0 fallback"`
		Entry *struct{} `xml:"http://www.w3.org/2005/Atom entry"`
	}
	if err := xml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if m.Retract.ID != "01JGONE" || m.Fallback.For != "urn:xmpp:message-retract:1" || m.Body == "" || m.Entry != nil || m.ID != "01JRETRACT" {
		t.Fatalf("retraction %+v\n%s", m, b)
	}
}
