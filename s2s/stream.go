package s2s

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"starling.dev/starling/dialback"
)

// Namespaces of the stream layer.
const (
	nsStream       = "http://etherx.jabber.org/streams"
	nsStreamErrors = "urn:ietf:params:xml:ns:xmpp-streams"
	nsTLS          = "urn:ietf:params:xml:ns:xmpp-tls"
)

// errTooBig ends a stream whose peer sent an element over MaxStanza.
var errTooBig = errors.New("s2s: element too large")

// limitedReader fails once more than its budget has been read since the
// last reset: one element may not hold the reader for ever. The decoder
// reads ahead, so an element may exceed the budget by a buffer's worth.
type limitedReader struct {
	r     io.Reader
	n     int
	limit int
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errTooBig
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= n
	return n, err
}

func (l *limitedReader) reset() { l.n = l.limit }

// xmlIn reads one direction of a stream: its header, then one top-level
// element after another. A stream restart (after STARTTLS) needs a new one.
type xmlIn struct {
	conn net.Conn
	lim  limitedReader
	d    *xml.Decoder
}

func newXMLIn(conn net.Conn, maxElement int) *xmlIn {
	in := &xmlIn{conn: conn, lim: limitedReader{r: conn, n: maxElement, limit: maxElement}}
	in.d = xml.NewDecoder(&in.lim)
	return in
}

// header reads the XML declaration, if any, and the stream header.
func (in *xmlIn) header() (stream.Info, error) {
	var info stream.Info
	for {
		tok, err := in.d.Token()
		if err != nil {
			return info, err
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if t.Target != "xml" {
				return info, stream.RestrictedXML
			}
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return info, stream.BadFormat
			}
		case xml.StartElement:
			switch {
			case t.Name.Space == nsStream && t.Name.Local == "error":
				return info, in.streamError(t)
			case t.Name.Space != nsStream || t.Name.Local != "stream":
				return info, stream.InvalidNamespace
			}
			if err := info.FromStartElement(t); err != nil {
				return info, err
			}
			if info.XMLNS != stanza.NSServer {
				return info, stream.InvalidNamespace
			}
			return info, nil
		default:
			return info, stream.RestrictedXML
		}
	}
}

// next returns the start of the next top-level element, skipping
// whitespace keepalives. The peer's end of stream is io.EOF, its stream
// error that error.
func (in *xmlIn) next() (xml.StartElement, error) {
	in.lim.reset()
	for {
		tok, err := in.d.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return xml.StartElement{}, stream.BadFormat
			}
			in.lim.reset() // a keepalive does not use up the next element's budget
		case xml.StartElement:
			if t.Name.Space == nsStream {
				if t.Name.Local == "error" {
					return t, in.streamError(t)
				}
				return t, stream.UnsupportedStanzaType
			}
			return t, nil
		case xml.EndElement:
			return xml.StartElement{}, io.EOF // the only end at the top: </stream:stream>
		default:
			return xml.StartElement{}, stream.RestrictedXML
		}
	}
}

// streamError decodes the peer's stream error.
func (in *xmlIn) streamError(start xml.StartElement) error {
	var se stream.Error
	if err := in.d.DecodeElement(&se, &start); err != nil {
		return err
	}
	return peerError{se}
}

// peerError is a stream error the peer sent (as opposed to one we send).
type peerError struct{ se stream.Error }

func (e peerError) Error() string { return "the peer's stream error: " + e.se.Err }
func (e peerError) Unwrap() error { return e.se }

// skip reads to the end of the element whose start next returned.
func (in *xmlIn) skip() error { return in.d.Skip() }

// decodeDialback reads the rest of a dialback element.
func (in *xmlIn) decodeDialback(start xml.StartElement) (dialback.Element, error) {
	return dialback.Decode(in.d, start)
}

// readDeadline sets when the next reads time out (zero: never).
func (in *xmlIn) readDeadline(t time.Time) { _ = in.conn.SetReadDeadline(t) }

// xmlOut writes one direction of a stream. Writes are serialised and each
// is flushed at once; a failed write closes the connection, which ends the
// stream.
type xmlOut struct {
	timeout time.Duration

	mu     sync.Mutex
	conn   net.Conn
	w      *bufio.Writer
	closed bool // </stream:stream> written
}

// writeBuffer is a stream's write buffer: a chunk of deliveries, so that
// one chunk is usually one write.
const writeBuffer = 64 << 10

func newXMLOut(conn net.Conn, timeout time.Duration) *xmlOut {
	return &xmlOut{conn: conn, w: bufio.NewWriterSize(conn, writeBuffer), timeout: timeout}
}

// errClosing refuses writes after the end of the stream.
var errClosing = errors.New("s2s: stream closing")

// write runs f with the buffered writer, under the lock and the write
// timeout, and flushes.
func (o *xmlOut) write(f func(w *bufio.Writer) error) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return errClosing
	}
	_ = o.conn.SetWriteDeadline(time.Now().Add(o.timeout))
	err := f(o.w)
	if err == nil {
		err = o.w.Flush()
	}
	_ = o.conn.SetWriteDeadline(time.Time{})
	if err != nil {
		o.closed = true
		_ = o.conn.Close()
	}
	return err
}

// writeBytes writes b as it is.
func (o *xmlOut) writeBytes(b []byte) error {
	return o.write(func(w *bufio.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// restart moves the writer onto conn (after STARTTLS).
func (o *xmlOut) restart(conn net.Conn) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.conn = conn
	o.w = bufio.NewWriterSize(conn, writeBuffer)
}

// end writes the end of the stream, after a stream error if se is set;
// later writes fail. It reports whether it was this call that ended it.
func (o *xmlOut) end(se *stream.Error) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	o.closed = true
	_ = o.conn.SetWriteDeadline(time.Now().Add(o.timeout))
	if se != nil {
		o.w.WriteString(`<stream:error><`)
		o.w.WriteString(se.Err)
		o.w.WriteString(` xmlns="` + nsStreamErrors + `"/>`)
		for _, t := range se.Text {
			o.w.WriteString(`<text xmlns="` + nsStreamErrors + `">`)
			_ = xml.EscapeText(o.w, []byte(t.Value))
			o.w.WriteString(`</text>`)
		}
		o.w.WriteString(`</stream:error>`)
	}
	o.w.WriteString(`</stream:stream>`)
	_ = o.w.Flush()
	_ = o.conn.SetWriteDeadline(time.Time{})
	return true
}

// header renders a stream header from our domain; to may be empty, and id
// too (an initiating entity sends none).
func header(from, to, id string) []byte {
	b := []byte(`<?xml version='1.0'?><stream:stream xmlns="` + stanza.NSServer + `" xmlns:stream="` + nsStream +
		`" xmlns:db="` + dialback.NS + `" version="1.0" from="`)
	b = appendAttr(b, from)
	if to != "" {
		b = append(b, `" to="`...)
		b = appendAttr(b, to)
	}
	if id != "" {
		b = append(b, `" id="`...)
		b = appendAttr(b, id)
	}
	return append(b, `">`...)
}

// appendAttr appends s escaped for a double-quoted attribute.
func appendAttr(b []byte, s string) []byte {
	var buf bytes.Buffer
	_ = xml.EscapeText(&buf, []byte(s)) // to memory: no error
	return append(b, buf.Bytes()...)
}

// localError is a stream error of ours, with the reason in words.
type localError struct {
	se  stream.Error
	why string
}

func (e localError) Error() string { return e.se.Err + ": " + e.why }
func (e localError) Unwrap() error { return e.se }

// streamErr makes a stream error of ours; the reason goes to the peer too.
func streamErr(cond stream.Error, format string, args ...any) error {
	why := fmt.Sprintf(format, args...)
	se := stream.Error{Err: cond.Err}
	se.Text = append(se.Text, struct{ Lang, Value string }{Value: why})
	return localError{se: se, why: why}
}

// streamErrorFor is the stream error to end a stream with after err, or
// nil when there is none to send (the peer ended it, or it just ended).
func streamErrorFor(err error) *stream.Error {
	var le localError
	var pe peerError
	var se stream.Error
	var syn *xml.SyntaxError
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.As(err, &pe):
		return nil
	case errors.As(err, &le):
		return &le.se
	case errors.As(err, &se):
		return &se
	case errors.As(err, &syn):
		se := stream.NotWellFormed
		se.Text = append(se.Text, struct{ Lang, Value string }{Value: syn.Msg})
		return &se
	case errors.Is(err, errTooBig):
		return &stream.PolicyViolation
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &stream.ConnectionTimeout
	}
	return &stream.UndefinedCondition
}

// newStreamID returns a fresh stream id: it is part of the dialback key,
// so it must not repeat or be guessable.
func newStreamID() string { return rand.Text() }

// domainOf returns the domain of a JID as written on a stanza: what
// follows the localpart's "@" and precedes the resource's "/" (neither
// can occur in a localpart, both can in a resource).
func domainOf(addr string) string {
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		addr = addr[:i]
	}
	if i := strings.IndexByte(addr, '@'); i >= 0 {
		addr = addr[i+1:]
	}
	return addr
}
