package xmpp

import (
	"bufio"
	"fmt"
	"unicode/utf8"

	"starling.dev/starling/internal/atom"

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
	nsRetract  = "urn:xmpp:message-retract:1"
	nsFallback = "urn:xmpp:fallback:0"
	nsHints    = "urn:xmpp:hints"
)

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
			tail = atom.AppendEntry(tail, atom.Entry{Domain: domain}, p)
		}
	}
	tail = append(tail, `<origin-id xmlns="`+nsSID+`" id="`...)
	tail = appendAttr(tail, p.ID)
	tail = append(tail, `"/></message>`...)
	return &Delivery{head: head, tail: tail}
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

// appendText and appendAttr escape as every hand-written byte of Starling
// is escaped (atom.AppendText, atom.AppendAttr).
func appendText(dst []byte, s string) []byte { return atom.AppendText(dst, s) }

func appendAttr[T string | []byte](dst []byte, s T) []byte { return atom.AppendAttr(dst, s) }
