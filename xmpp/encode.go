package xmpp

import (
	"io"
	"unicode/utf8"

	"starling.dev/starling/fanout"
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

// NewDelivery renders post p, sent from its author's JID at domain.
func NewDelivery(domain string, p fanout.Post) *Delivery {
	var head, tail []byte
	head = append(head, `<message type="chat" from="`...)
	head = appendAttr(head, p.Author+"@"+domain)
	head = append(head, `" to="`...)

	tail = append(tail, `" id="`...)
	tail = appendAttr(tail, p.ID)
	tail = append(tail, `"><body>`...)
	tail = appendText(tail, p.Text)
	tail = append(tail, `</body><origin-id xmlns="`+nsSID+`" id="`...)
	tail = appendAttr(tail, p.ID)
	tail = append(tail, `"/></message>`...)
	return &Delivery{head: head, tail: tail}
}

// AppendTo appends the message addressed to the JID to dst.
func (d *Delivery) AppendTo(dst []byte, to string) []byte {
	dst = append(dst, d.head...)
	dst = appendAttr(dst, to)
	return append(dst, d.tail...)
}

// stringByteWriter is what bufio.Writer offers; WriteTo uses it to escape
// straight into the connection's buffer.
type stringByteWriter interface {
	io.Writer
	io.StringWriter
}

// WriteTo writes the message addressed to the JID to w. The address is
// written as is when it needs no escaping, the usual case.
func (d *Delivery) WriteTo(w stringByteWriter, to string) error {
	if _, err := w.Write(d.head); err != nil {
		return err
	}
	var err error
	if attrSafe(to) {
		_, err = w.WriteString(to)
	} else {
		var scratch [256]byte
		_, err = w.Write(appendAttr(scratch[:0], to))
	}
	if err != nil {
		return err
	}
	_, err = w.Write(d.tail)
	return err
}

// attrSafe reports whether s can be written into an attribute value as is.
func attrSafe(s string) bool {
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
func appendAttr(dst []byte, s string) []byte {
	return appendEscaped(dst, s, true)
}

func appendEscaped(dst []byte, s string, attr bool) []byte {
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
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r != utf8.RuneError || size > 1) && fanout.IsXMLChar(r) {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// SanitizeText returns s as a delivery will carry it: without the characters
// XML 1.0 cannot carry and without invalid UTF-8.
func SanitizeText(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !fanout.IsXMLChar(r) {
			return string(cleanRunes(s))
		}
	}
	return s
}

func cleanRunes(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r != utf8.RuneError || size > 1) && fanout.IsXMLChar(r) {
			out = append(out, s[i:i+size]...)
		}
		i += size
	}
	return out
}
