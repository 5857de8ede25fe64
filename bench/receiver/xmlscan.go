package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"unicode"
	"unicode/utf8"
)

// The receiver's tokenizer: a streaming XML scanner for what an XMPP stream
// may carry (RFC 6120 §11.1: no comments, processing instructions other than
// the declaration, DTDs or entities beyond the five predefined ones). It
// checks well-formedness as it goes: names, quoting, references, characters,
// UTF-8, duplicate attributes, and that every end tag matches its start tag.
// Tokens point into its buffer and stay valid until the next call. It does no
// namespace processing; nothing the receiver counts depends on it.
//
// encoding/xml does the same work at ~4 µs a small stanza, which caps a
// receiver near the gateway's own rate; this one makes no allocation per
// token. stdxml.go runs the receiver on encoding/xml instead, and the tests
// check both agree.

type kind uint8

const (
	kStart kind = iota + 1 // a start tag; empty for <a/>, which has no end token
	kEnd                   // an end tag
	kText                  // character data, or a CDATA section
	kDecl                  // the XML declaration
)

// attr is one attribute; value is as written between the quotes, references
// not replaced (decode turns it into text).
type attr struct {
	name, value []byte
	quote       byte
}

type token struct {
	kind  kind
	name  []byte
	attrs []attr
	empty bool
	text  []byte // as written; for a CDATA section its content
	cdata bool
	depth int // of a start or end tag: the root element is 1
}

// syntaxError is input that is not well-formed, or not allowed in a stream.
type syntaxError struct {
	offset int64
	msg    string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("xml: byte %d: %s", e.offset, e.msg) }

// errShort says the token at hand goes on past the buffered bytes.
var errShort = errors.New("short")

type scanner struct {
	r        io.Reader
	buf      []byte
	pos, end int
	off      int64 // stream offset of buf[0]
	max      int   // largest token
	rerr     error
	idle     func() // called before each read (a receiver flushes its answers)
	names    []byte // names of the open elements, concatenated
	ends     []int  // where each ends in names
	rootDone bool
	started  bool
	tok      token
	attrs    []attr // the attributes' backing array, reused
}

func newScanner(r io.Reader, size, max int) *scanner {
	return &scanner{r: r, buf: make([]byte, size), max: max}
}

// next returns the next token, io.EOF after the root element's end and the
// end of the input, a *syntaxError for malformed input, or the reader's error.
func (s *scanner) next() (*token, error) {
	for {
		if s.pos < s.end {
			n, err := s.parse(s.buf[s.pos:s.end])
			if err == nil {
				s.pos += n
				s.started = true
				return &s.tok, nil
			}
			if err != errShort {
				return nil, err
			}
		}
		if err := s.fill(); err != nil {
			return nil, err
		}
	}
}

func (s *scanner) fill() error {
	if s.rerr != nil {
		if s.rerr == io.EOF {
			rest := s.buf[s.pos:s.end]
			if s.rootDone && len(bytes.TrimLeft(rest, " \t\r\n")) == 0 {
				return io.EOF
			}
			return s.errorf(0, "unexpected end of input with %d elements open", len(s.ends))
		}
		return s.rerr
	}
	if s.pos > 0 {
		s.off += int64(s.pos)
		s.end = copy(s.buf, s.buf[s.pos:s.end])
		s.pos = 0
	}
	if s.end == len(s.buf) {
		if len(s.buf) >= s.max {
			return s.errorf(0, "a token longer than %d bytes", s.max)
		}
		nb := make([]byte, min(2*len(s.buf), s.max))
		copy(nb, s.buf[:s.end])
		s.buf = nb
	}
	if s.idle != nil {
		s.idle()
	}
	n, err := s.r.Read(s.buf[s.end:])
	s.end += n
	if err != nil {
		s.rerr = err
	}
	return nil
}

func (s *scanner) errorf(at int, format string, args ...any) error {
	return &syntaxError{offset: s.off + int64(s.pos+at), msg: fmt.Sprintf(format, args...)}
}

// parse reads one token from the start of b and returns its length.
func (s *scanner) parse(b []byte) (int, error) {
	if b[0] != '<' {
		return s.parseText(b)
	}
	if len(b) < 2 {
		return 0, errShort
	}
	switch b[1] {
	case '/':
		return s.parseEnd(b)
	case '?':
		return s.parseDecl(b)
	case '!':
		switch {
		case prefix(b, "<![CDATA["):
			if len(b) < 9 {
				return 0, errShort
			}
			return s.parseCDATA(b)
		case prefix(b, "<!--"):
			if len(b) < 4 {
				return 0, errShort
			}
			return 0, s.errorf(0, "a comment, which a stream may not carry")
		}
		return 0, s.errorf(0, "a DTD, which a stream may not carry")
	}
	return s.parseStart(b)
}

// prefix tells whether b starts with p, or is the start of p.
func prefix(b []byte, p string) bool {
	if len(b) < len(p) {
		return string(b) == p[:len(b)]
	}
	return string(b[:len(p)]) == p
}

func (s *scanner) parseText(b []byte) (int, error) {
	if len(s.ends) == 0 {
		// Outside the root only white space is allowed.
		i := 0
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i < len(b) && b[i] != '<' {
			if s.rootDone {
				return 0, s.errorf(i, "content after the root element")
			}
			return 0, s.errorf(i, "text before the root element")
		}
		if i == len(b) && !s.rootDone {
			return 0, errShort // wait for the markup; white space is no token
		}
		s.tok = token{kind: kText, text: b[:i]}
		return i, nil
	}
	i := bytes.IndexByte(b, '<')
	if i < 0 {
		return 0, errShort
	}
	if at, msg := checkChars(b[:i], 0); msg != "" {
		return 0, s.errorf(at, "%s", msg)
	}
	s.tok = token{kind: kText, text: b[:i]}
	return i, nil
}

func (s *scanner) parseCDATA(b []byte) (int, error) {
	if len(s.ends) == 0 {
		return 0, s.errorf(0, "a CDATA section outside the root element")
	}
	i := bytes.Index(b[9:], []byte("]]>"))
	if i < 0 {
		return 0, errShort
	}
	body := b[9 : 9+i]
	if at, msg := checkChars(body, 'C'); msg != "" {
		return 0, s.errorf(9+at, "%s", msg)
	}
	s.tok = token{kind: kText, text: body, cdata: true}
	return 9 + i + 3, nil
}

func (s *scanner) parseDecl(b []byte) (int, error) {
	if len(b) < 6 && prefix(b, "<?xml") {
		return 0, errShort
	}
	if !prefix(b, "<?xml") || !isSpace(b[5]) {
		return 0, s.errorf(0, "a processing instruction, which a stream may not carry")
	}
	if s.started || s.off+int64(s.pos) != 0 {
		return 0, s.errorf(0, "an XML declaration not at the start of the stream")
	}
	i := bytes.Index(b, []byte("?>"))
	if i < 0 {
		return 0, errShort
	}
	// The pseudo-attributes are attributes in form: version first.
	attrs, err := s.parseAttrs(b[:i], 5)
	if err != nil {
		return 0, err
	}
	if len(attrs) == 0 || string(attrs[0].name) != "version" || string(attrs[0].value) != "1.0" {
		return 0, s.errorf(0, "an XML declaration without version 1.0")
	}
	s.tok = token{kind: kDecl}
	return i + 2, nil
}

func (s *scanner) parseEnd(b []byte) (int, error) {
	j, err := s.name(b, 2)
	if err != nil {
		return 0, err
	}
	name := b[2:j]
	for j < len(b) && isSpace(b[j]) {
		j++
	}
	if j == len(b) {
		return 0, errShort
	}
	if b[j] != '>' {
		return 0, s.errorf(j, "unexpected %q in an end tag", b[j])
	}
	if len(s.ends) == 0 {
		return 0, s.errorf(0, "end tag </%s> with no element open", name)
	}
	from := 0
	if len(s.ends) > 1 {
		from = s.ends[len(s.ends)-2]
	}
	if open := s.names[from:s.ends[len(s.ends)-1]]; !bytes.Equal(open, name) {
		return 0, s.errorf(0, "end tag </%s> closes <%s>", name, open)
	}
	s.tok = token{kind: kEnd, name: name, depth: len(s.ends)}
	s.names = s.names[:from]
	s.ends = s.ends[:len(s.ends)-1]
	if len(s.ends) == 0 {
		s.rootDone = true
	}
	return j + 1, nil
}

func (s *scanner) parseStart(b []byte) (int, error) {
	if s.rootDone {
		return 0, s.errorf(0, "a second root element")
	}
	j, err := s.name(b, 1)
	if err != nil {
		return 0, err
	}
	name := b[1:j]
	// Find the tag's end first, quotes respected, so that the attributes
	// are parsed once.
	k := j
	for {
		if k == len(b) {
			return 0, errShort
		}
		c := b[k]
		if c == '>' {
			break
		}
		if c == '"' || c == '\'' {
			q := bytes.IndexByte(b[k+1:], c)
			if q < 0 {
				return 0, errShort
			}
			k += q + 2
			continue
		}
		k++
	}
	tagEnd := k
	empty := b[k-1] == '/' && k-1 >= j
	if empty {
		tagEnd = k - 1
	}
	attrs, err := s.parseAttrs(b[:tagEnd], j)
	if err != nil {
		return 0, err
	}
	s.tok = token{kind: kStart, name: name, attrs: attrs, empty: empty, depth: len(s.ends) + 1}
	if empty {
		if len(s.ends) == 0 {
			s.rootDone = true
		}
	} else {
		s.names = append(s.names, name...)
		s.ends = append(s.ends, len(s.names))
	}
	return k + 1, nil
}

// parseAttrs parses the attributes in b[i:], which holds the whole of a
// tag's inside after its name.
func (s *scanner) parseAttrs(b []byte, i int) ([]attr, error) {
	attrs := s.attrs[:0]
	for {
		sp := i
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i == len(b) {
			s.attrs = attrs
			return attrs, nil
		}
		if i == sp {
			return nil, s.errorf(i, "no white space before an attribute")
		}
		j, err := s.name(b, i)
		if err == errShort { // the name runs to the tag's end
			return nil, s.errorf(i, "an attribute without a value, or a bad name")
		}
		if err != nil {
			return nil, err
		}
		a := attr{name: b[i:j]}
		for j < len(b) && isSpace(b[j]) {
			j++
		}
		if j == len(b) || b[j] != '=' {
			return nil, s.errorf(j, "an attribute without a value")
		}
		j++
		for j < len(b) && isSpace(b[j]) {
			j++
		}
		if j == len(b) || (b[j] != '"' && b[j] != '\'') {
			return nil, s.errorf(j, "an attribute value without quotes")
		}
		a.quote = b[j]
		q := bytes.IndexByte(b[j+1:], a.quote)
		if q < 0 {
			return nil, s.errorf(j, "an attribute value not closed")
		}
		a.value = b[j+1 : j+1+q]
		if at, msg := checkChars(a.value, a.quote); msg != "" {
			return nil, s.errorf(j+1+at, "%s", msg)
		}
		for _, o := range attrs {
			if bytes.Equal(o.name, a.name) {
				return nil, s.errorf(i, "attribute %s given twice", a.name)
			}
		}
		attrs = append(attrs, a)
		i = j + 2 + q
	}
}

// name returns where the XML name starting at b[i] ends, errShort if the
// buffered bytes end inside it.
func (s *scanner) name(b []byte, i int) (int, error) {
	start := i
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			if nameByte[c]&1 == 0 || (i == start && nameByte[c]&2 == 0) {
				break
			}
			i++
			continue
		}
		if !utf8.FullRune(b[i:]) {
			return 0, errShort
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError || !(unicode.IsLetter(r) || i > start && (unicode.IsDigit(r) || unicode.In(r, unicode.Mn, unicode.Mc))) {
			return 0, s.errorf(i, "%q in a name", r)
		}
		i += n
	}
	if i == len(b) {
		return 0, errShort
	}
	if i == start {
		return 0, s.errorf(i, "%q where a name should start", b[i])
	}
	return i, nil
}

// nameByte: bit 1 marks an ASCII byte a name may hold, bit 2 one it may
// start with.
var nameByte = func() (t [utf8.RuneSelf]byte) {
	for c := range utf8.RuneSelf {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == ':':
			t[c] = 3
		case c >= '0' && c <= '9', c == '-', c == '.':
			t[c] = 1
		}
	}
	return t
}()

// plain marks the ASCII bytes character data may hold as they are.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = true
	}
	t['\t'], t['\n'], t['\r'] = true, true, true
	t['&'], t['<'], t['>'], t['"'], t['\''] = false, false, false, false, false
	return t
}()

// checkChars checks character data: text (ctx 0), a CDATA section's content
// ('C') or an attribute value quoted by ctx. It returns where the first
// fault lies and what it is, or "".
func checkChars(b []byte, ctx byte) (int, string) {
	for i := 0; i < len(b); {
		c := b[i]
		if plain[c] {
			i++
			continue
		}
		switch {
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return i, "invalid UTF-8"
			}
			if r == 0xFFFE || r == 0xFFFF {
				return i, fmt.Sprintf("character %U, not allowed in XML", r)
			}
			i += n
		case c == '"' || c == '\'':
			if c == ctx {
				return i, "an attribute value not closed"
			}
			i++
		case c == '>':
			if ctx == 0 && i >= 2 && b[i-1] == ']' && b[i-2] == ']' {
				return i, "]]> in text"
			}
			i++
		case c == '<':
			if ctx == 'C' {
				i++
				continue
			}
			return i, "< in character data"
		case c == '&':
			if ctx == 'C' {
				i++
				continue
			}
			n, msg := checkRef(b[i:])
			if msg != "" {
				return i, msg
			}
			i += n
		default:
			return i, fmt.Sprintf("control character %#02x, not allowed in XML", c)
		}
	}
	return 0, ""
}

// checkRef checks the reference at the start of b ('&' ... ';') and returns
// its length.
func checkRef(b []byte) (int, string) {
	end := bytes.IndexByte(b, ';')
	if end < 0 || end > 12 {
		return 0, "& without a reference"
	}
	ref := b[1:end]
	switch string(ref) {
	case "lt", "gt", "amp", "apos", "quot":
		return end + 1, ""
	}
	if len(ref) < 2 || ref[0] != '#' {
		return 0, fmt.Sprintf("unknown entity &%s;", ref)
	}
	r, ok := charRef(ref[1:])
	if !ok || !isChar(r) {
		return 0, fmt.Sprintf("bad character reference &%s;", ref)
	}
	return end + 1, ""
}

func charRef(ref []byte) (rune, bool) {
	base := rune(10)
	if ref[0] == 'x' {
		base, ref = 16, ref[1:]
	}
	if len(ref) == 0 {
		return 0, false
	}
	var r rune
	for _, c := range ref {
		var d rune
		switch {
		case c >= '0' && c <= '9':
			d = rune(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = rune(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = rune(c-'A') + 10
		default:
			return 0, false
		}
		r = r*base + d
		if r > unicode.MaxRune {
			return 0, false
		}
	}
	return r, true
}

func isChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// decode returns character data with its references replaced; it is only
// called on data checkChars accepted.
func decode(b []byte) []byte {
	if bytes.IndexByte(b, '&') < 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		if b[i] != '&' {
			out = append(out, b[i])
			i++
			continue
		}
		end := i + bytes.IndexByte(b[i:], ';')
		switch ref := string(b[i+1 : end]); ref {
		case "lt":
			out = append(out, '<')
		case "gt":
			out = append(out, '>')
		case "amp":
			out = append(out, '&')
		case "apos":
			out = append(out, '\'')
		case "quot":
			out = append(out, '"')
		default:
			r, _ := charRef([]byte(ref[1:]))
			out = utf8.AppendRune(out, r)
		}
		i = end + 1
	}
	return out
}
