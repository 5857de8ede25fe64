package main

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"io"
)

// stdTokenizer reads the stream with encoding/xml's Decoder.Token (strict:
// end tags must match, references must be known) and hands on the same
// tokens as the scanner, refusing what a stream may not carry as the
// scanner does. It is the reference the scanner is tested against, and
// the receiver's -parser encoding/xml.
type stdTokenizer struct {
	d        *xml.Decoder
	depth    int
	first    bool
	rootSeen bool
	tok      token
	buf      bytes.Buffer
}

// idleReader calls idle before each read.
type idleReader struct {
	r    io.Reader
	idle func()
}

func (r idleReader) Read(p []byte) (int, error) {
	if r.idle != nil {
		r.idle()
	}
	return r.r.Read(p)
}

func newStdTokenizer(r io.Reader, idle func()) *stdTokenizer {
	d := xml.NewDecoder(bufio.NewReaderSize(idleReader{r, idle}, 64<<10))
	d.Strict = true
	return &stdTokenizer{d: d, first: true}
}

func (x *stdTokenizer) fault(msg string) error {
	return &syntaxError{offset: x.d.InputOffset(), msg: msg}
}

func (x *stdTokenizer) next() (*token, error) {
	first := x.first
	x.first = false
	t, err := x.d.Token()
	if err != nil {
		var se *xml.SyntaxError
		if errors.As(err, &se) {
			return nil, x.fault(se.Msg)
		}
		if err == io.EOF && x.depth == 0 && !first {
			return nil, io.EOF
		}
		return nil, err
	}
	x.buf.Reset()
	switch t := t.(type) {
	case xml.StartElement:
		if x.depth == 0 && x.rootSeen {
			return nil, x.fault("a second root element")
		}
		x.rootSeen = true
		x.depth++
		x.tok = token{kind: kStart, name: x.name(t.Name), depth: x.depth}
		for i, a := range t.Attr {
			for _, o := range t.Attr[:i] {
				if o.Name == a.Name {
					return nil, x.fault("attribute " + a.Name.Local + " given twice")
				}
			}
			start := x.buf.Len()
			_ = xml.EscapeText(&x.buf, []byte(a.Value))
			x.tok.attrs = append(x.tok.attrs, attr{name: x.name(a.Name), value: x.buf.Bytes()[start:], quote: '"'})
		}
	case xml.EndElement:
		x.tok = token{kind: kEnd, name: x.name(t.Name), depth: x.depth}
		x.depth--
	case xml.CharData:
		if x.depth == 0 && len(bytes.TrimLeft(t, " \t\r\n")) > 0 {
			return nil, x.fault("text outside the root element")
		}
		_ = xml.EscapeText(&x.buf, t)
		x.tok = token{kind: kText, text: x.buf.Bytes()}
	case xml.ProcInst:
		if t.Target != "xml" || !first {
			return nil, x.fault("a processing instruction, which a stream may not carry")
		}
		x.tok = token{kind: kDecl}
	case xml.Comment:
		return nil, x.fault("a comment, which a stream may not carry")
	case xml.Directive:
		return nil, x.fault("a DTD, which a stream may not carry")
	}
	return &x.tok, nil
}

// name spells a name as it was written for the names a session looks at:
// the stream's own elements with their usual prefix, others by local name.
func (x *stdTokenizer) name(n xml.Name) []byte {
	if n.Space == nsStreams {
		return []byte("stream:" + n.Local)
	}
	return []byte(n.Local)
}
