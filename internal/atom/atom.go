// Package atom writes a post as an Atom entry (RFC 4287): the one entry
// format of Starling, carried by the atom delivery payload and listed in an
// author's web feed.
package atom

import (
	"time"
	"unicode/utf8"

	"starling.dev/starling"
)

// Namespace is the Atom namespace, written on every entry so that an entry
// stands alone inside a stanza as well as inside a feed.
const Namespace = "http://www.w3.org/2005/Atom"

// TitleChars bounds an entry's title; the content has the whole text.
const TitleChars = 80

// Entry is what an entry says about a post besides the post itself.
type Entry struct {
	// Domain is the XMPP domain of the author's JID; it also names the
	// entry's tag URI. Required.
	Domain string
	// Link, when set, is the address of the post's web page, written as
	// the entry's alternate link. Empty writes no link (a delivery).
	Link string
}

// AppendEntry appends post p as an Atom entry: id
// tag:<domain>,<date>:post:<id>, a title (the text cut to TitleChars),
// published and updated (the post's time), the author (display name and
// xmpp: URI), the link when e has one, and the text as content. Text is
// escaped; characters XML cannot carry are dropped.
func AppendEntry(b []byte, e Entry, p starling.Post) []byte {
	published := p.CreatedAt.UTC().Format(time.RFC3339Nano)
	b = append(b, `<entry xmlns="`+Namespace+`"><id>`...)
	b = AppendID(b, e.Domain, p)
	b = append(b, `</id><title>`...)
	b = AppendText(b, Truncate(p.Text, TitleChars))
	b = append(b, `</title>`...)
	if e.Link != "" {
		b = append(b, `<link rel="alternate" type="text/html" href="`...)
		b = AppendAttr(b, e.Link)
		b = append(b, `"/>`...)
	}
	b = append(b, `<published>`...)
	b = append(b, published...)
	b = append(b, `</published><updated>`...)
	b = append(b, published...)
	b = append(b, `</updated><author><name>`...)
	b = AppendText(b, p.AuthorDisplayName())
	b = append(b, `</name><uri>xmpp:`...)
	b = AppendText(b, p.Author+"@"+e.Domain)
	b = append(b, `</uri></author><content type="text">`...)
	b = AppendText(b, p.Text)
	return append(b, `</content></entry>`...)
}

// AppendID appends the entry id of a post, a tag URI (RFC 4151) minted by
// the domain on the day of the post.
func AppendID(b []byte, domain string, p starling.Post) []byte {
	b = append(b, "tag:"...)
	b = AppendText(b, domain)
	b = append(b, ',')
	b = append(b, p.CreatedAt.UTC().Format(time.DateOnly)...)
	b = append(b, ":post:"...)
	return AppendText(b, p.ID)
}

// Truncate keeps the first n code points of s and adds "…" when it cut
// something. Invalid UTF-8 becomes U+FFFD, as in any string-to-rune
// conversion.
func Truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// AppendText appends s escaped as character data. Characters XML 1.0
// cannot carry, and invalid UTF-8, are dropped; a CR is written as a
// reference so that a parser does not turn it into a LF. The delivery
// stanzas (package xmpp) escape with it too: one escaping for every byte
// Starling writes by hand.
func AppendText[T string | []byte](dst []byte, s T) []byte { return appendEscaped(dst, s, false) }

// AppendAttr appends s escaped for a quoted attribute value.
func AppendAttr[T string | []byte](dst []byte, s T) []byte { return appendEscaped(dst, s, true) }

func appendEscaped[T string | []byte](dst []byte, s T, attr bool) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c == '&':
				dst = append(dst, "&amp;"...)
			case c == '<':
				dst = append(dst, "&lt;"...)
			case c == '>':
				dst = append(dst, "&gt;"...)
			case c == '\r':
				dst = append(dst, "&#xD;"...)
			case attr && c == '"':
				dst = append(dst, "&quot;"...)
			case attr && c == '\'':
				dst = append(dst, "&apos;"...)
			case attr && c == '\n':
				dst = append(dst, "&#xA;"...)
			case attr && c == '\t':
				dst = append(dst, "&#x9;"...)
			case c < 0x20 && c != '\n' && c != '\t':
				// illegal in XML 1.0: dropped
			default:
				dst = append(dst, c)
			}
			continue
		}
		// At most one rune's bytes are converted, which needs no
		// allocation when s is a []byte.
		_, size, ok := starling.XMLRuneAt(string(s[i:min(len(s), i+utf8.UTFMax)]), 0)
		if ok {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}
