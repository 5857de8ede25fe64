package xmpp

import (
	"bufio"
	"fmt"
	"time"
	"unicode/utf8"

	"starling.dev/starling"
)

// nsSID is XEP-0359 (unique and stable stanza ids).
const nsSID = "urn:xmpp:sid:0"

// Delivery is one post rendered once as the bytes of its chat message, with
// a gap for the recipient's address. Writing it to many recipients copies
// bytes and escapes only the address, so it does not allocate per recipient.
type Delivery struct {
	head []byte // <message type="chat" from="author@domain" to="
	tail []byte // " id="..."><body>...</body>...</message>
}

// Namespaces of the delivery payloads.
const (
	nsAtom     = "http://www.w3.org/2005/Atom"
	nsRetract  = "urn:xmpp:message-retract:1"
	nsFallback = "urn:xmpp:fallback:0"
	nsHints    = "urn:xmpp:hints"
)

// atomTitleChars bounds the Atom entry's title; the content has it all.
const atomTitleChars = 80

// Payload is what a delivery carries besides the body and origin-id that
// every delivery has (the gateway's STARLING_PAYLOAD).
type Payload string

const (
	// PayloadMinimal is the body and the XEP-0359 origin-id: what Jabber
	// clients show, and the least the XMPP server must parse for each
	// recipient. The default.
	PayloadMinimal Payload = "minimal"
	// PayloadAtom adds the post as an Atom entry (RFC 4287: author, id,
	// dates, content), for machine consumers.
	PayloadAtom Payload = "atom"
)

// ParsePayload reads a payload profile's name.
func ParsePayload(s string) (Payload, error) {
	switch p := Payload(s); p {
	case PayloadMinimal, PayloadAtom:
		return p, nil
	}
	return "", fmt.Errorf("xmpp: payload %q: use %s or %s", s, PayloadMinimal, PayloadAtom)
}

// NewDelivery renders post p, sent from its author's JID at domain: the body
// is the plain text and origin-id the post id (also the stanza id); with
// PayloadAtom an Atom entry describes the post for bots and feed readers
// (any other payload, the zero value included, renders the minimal
// stanza). A post that retracts another renders as an XEP-0424 retraction
// instead, whatever the payload.
func NewDelivery(domain string, payload Payload, p starling.Post) *Delivery {
	author := p.Author + "@" + domain
	var head, tail []byte
	head = append(head, `<message type="chat" from="`...)
	head = appendAttr(head, author)
	head = append(head, `" to="`...)

	tail = append(tail, `" id="`...)
	tail = appendAttr(tail, p.ID)
	tail = append(tail, `">`...)
	if p.Retracts != "" {
		tail = appendRetraction(tail, p)
	} else {
		// No hints (markable, store, no-copy): every element is one more
		// thing the server parses per recipient, and a chat message with a
		// body is stored and carbon-copied by default anyway.
		tail = append(tail, `<body>`...)
		tail = appendText(tail, p.Text)
		tail = append(tail, `</body>`...)
		if payload == PayloadAtom {
			tail = appendAtom(tail, domain, author, p)
		}
	}
	tail = append(tail, `<origin-id xmlns="`+nsSID+`" id="`...)
	tail = appendAttr(tail, p.ID)
	tail = append(tail, `"/></message>`...)
	return &Delivery{head: head, tail: tail}
}

// appendAtom appends the post as an Atom entry (RFC 4287), as identi.ca's
// bot did.
func appendAtom(b []byte, domain, author string, p starling.Post) []byte {
	name := p.AuthorDisplayName()
	published := p.CreatedAt.UTC().Format(time.RFC3339Nano)
	b = append(b, `<entry xmlns="`+nsAtom+`"><id>tag:`...)
	b = appendText(b, domain)
	b = append(b, ',')
	b = append(b, p.CreatedAt.UTC().Format(time.DateOnly)...)
	b = append(b, ":post:"...)
	b = appendText(b, p.ID)
	b = append(b, `</id><title>`...)
	b = appendText(b, truncate(p.Text, atomTitleChars))
	b = append(b, `</title><published>`...)
	b = append(b, published...)
	b = append(b, `</published><updated>`...)
	b = append(b, published...)
	b = append(b, `</updated><author><name>`...)
	b = appendText(b, name)
	b = append(b, `</name><uri>xmpp:`...)
	b = appendText(b, author)
	b = append(b, `</uri></author><content type="text">`...)
	b = appendText(b, p.Text)
	return append(b, `</content></entry>`...)
}

// appendRetraction appends an XEP-0424 retraction of the post p.Retracts
// refers to (by the origin-id its delivery carried), with a fallback body
// for clients that do not support retraction, and a hint to store it so
// that offline archives learn of it too.
func appendRetraction(b []byte, p starling.Post) []byte {
	b = append(b, `<retract xmlns="`+nsRetract+`" id="`...)
	b = appendAttr(b, p.Retracts)
	b = append(b, `"/><fallback xmlns="`+nsFallback+`" for="`+nsRetract+`"/><body>`...)
	b = appendText(b, p.Author+" deleted an earlier post.")
	return append(b, `</body><store xmlns="`+nsHints+`"/>`...)
}

// AppendTo appends the message addressed to the JID to dst.
func (d *Delivery) AppendTo(dst []byte, to string) []byte {
	dst = append(dst, d.head...)
	dst = appendAttr(dst, to)
	return append(dst, d.tail...)
}

// writeTo writes the message addressed to the JID to w. This is the hot
// path, once per recipient: the address is copied as is when it needs no
// escaping, the usual case, and escaped into w's own buffer otherwise, so
// nothing is allocated either way.
func (d *Delivery) writeTo(w *bufio.Writer, to []byte) error {
	// A bufio.Writer's error is sticky: the last Write reports any.
	w.Write(d.head)
	if attrSafe(to) {
		w.Write(to)
	} else {
		w.Write(appendAttr(w.AvailableBuffer(), to))
	}
	_, err := w.Write(d.tail)
	return err
}

// attrSafe reports whether s can be written into an attribute value as is.
func attrSafe[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '&' || c == '<' || c == '>' || c == '"' || c == '\'' {
			return false
		}
	}
	return true
}

// appendText appends s escaped as character data. Characters XML cannot
// carry, and invalid UTF-8, are dropped: the API refuses them, and this is
// the last guard before the wire. A CR is written as a reference so that a
// parser does not turn it into a LF.
func appendText(dst []byte, s string) []byte {
	return appendEscaped(dst, s, false)
}

// appendAttr appends s escaped for a double- or single-quoted attribute.
func appendAttr[T string | []byte](dst []byte, s T) []byte {
	return appendEscaped(dst, s, true)
}

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
