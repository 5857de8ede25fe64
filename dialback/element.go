package dialback

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Kind tells the two elements apart.
type Kind uint8

const (
	// Result is <db:result/>: the originating server's key on its own
	// stream, or the receiving server's verdict on it.
	Result Kind = iota + 1
	// Verify is <db:verify/>: the receiving server asking the
	// authoritative server whether a key is its own, or the answer.
	Verify
)

func (k Kind) String() string {
	switch k {
	case Result:
		return "result"
	case Verify:
		return "verify"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Type is the element's type attribute: empty for a request, the verdict
// for an answer.
type Type string

// The verdicts.
const (
	Request Type = ""
	Valid   Type = "valid"
	Invalid Type = "invalid"
	Error   Type = "error"
)

// Limits on what a peer may send. Keys are 64 hex digits in practice;
// domains are at most 1023 bytes (RFC 7622).
const (
	MaxKey    = 1024
	MaxDomain = 1023
	MaxID     = 1024
)

// nsStanzas qualifies the condition of an error answer.
const nsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"

// Element is one <db:result/> or <db:verify/>.
type Element struct {
	Kind     Kind
	From, To string
	// ID is the id of the stream the key was issued on: required in
	// <db:verify/>; a <db:result/> answer may echo it.
	ID   string
	Type Type
	// Key is the element's text: the key in a request (required there);
	// answers may echo it.
	Key string
	// Condition is the stanza error condition of an error answer, if it
	// names one (item-not-found, remote-server-not-found, ...).
	Condition string
}

// Errors of Decode and Parse.
var (
	ErrNotDialback = errors.New("dialback: not a db:result or db:verify element")
	ErrMalformed   = errors.New("dialback: malformed element")
)

// IsDialback reports whether start opens a <db:result/> or <db:verify/>.
func IsDialback(start xml.StartElement) bool {
	return start.Name.Space == NS && (start.Name.Local == "result" || start.Name.Local == "verify")
}

// Decode reads the rest of the element start opened from r (up to and
// including its end element) and checks it. It reads the whole element
// even when it is malformed, so that the stream stays in step; on a read
// error the stream is unusable anyway.
func Decode(r xml.TokenReader, start xml.StartElement) (Element, error) {
	var e Element
	switch {
	case start.Name.Space != NS:
		return e, skipRest(r, ErrNotDialback)
	case start.Name.Local == "result":
		e.Kind = Result
	case start.Name.Local == "verify":
		e.Kind = Verify
	default:
		return e, skipRest(r, ErrNotDialback)
	}
	var bad error
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue // xmlns declarations and foreign attributes
		}
		switch a.Name.Local {
		case "from":
			e.From = a.Value
		case "to":
			e.To = a.Value
		case "id":
			e.ID = a.Value
		case "type":
			e.Type = Type(a.Value)
		}
	}
	key, cond, err := readContent(r)
	if err != nil {
		return e, err
	}
	if key == nil {
		bad = fmt.Errorf("%w: text longer than %d bytes", ErrMalformed, MaxKey)
	}
	e.Key = strings.TrimSpace(string(key))
	if e.Type == Error {
		e.Condition = cond
	}
	if bad == nil {
		bad = e.Check()
	}
	return e, bad
}

// Check reports whether e is well formed: domains set and plausible, a
// known type, a key in every request and an id in every <db:verify/>.
func (e Element) Check() error {
	switch {
	case e.Kind != Result && e.Kind != Verify:
		return fmt.Errorf("%w: kind %d", ErrMalformed, e.Kind)
	case !domainLike(e.From) || !domainLike(e.To):
		return fmt.Errorf("%w: from %q, to %q", ErrMalformed, e.From, e.To)
	case e.Type != Request && e.Type != Valid && e.Type != Invalid && e.Type != Error:
		return fmt.Errorf("%w: type %q", ErrMalformed, e.Type)
	case e.Type == Request && e.Key == "":
		return fmt.Errorf("%w: a request without a key", ErrMalformed)
	case e.Kind == Verify && e.ID == "":
		return fmt.Errorf("%w: db:verify without an id", ErrMalformed)
	case len(e.ID) > MaxID || len(e.Key) > MaxKey:
		return fmt.Errorf("%w: too long", ErrMalformed)
	case e.Condition != "" && (e.Type != Error || !conditionLike(e.Condition)):
		return fmt.Errorf("%w: condition %q", ErrMalformed, e.Condition)
	case !cleanText(e.ID) || !cleanText(e.Key):
		return fmt.Errorf("%w: characters XML cannot carry", ErrMalformed)
	}
	return nil
}

// domainLike is a loose check of a domain: the peer's claims are compared
// with known domains anyway, this only keeps out what no domain can be.
func domainLike(s string) bool {
	if s == "" || len(s) > MaxDomain {
		return false
	}
	return !strings.ContainsAny(s, "@/ \t\r\n") && cleanText(s)
}

// cleanText reports whether s is UTF-8 made only of characters XML 1.0
// can carry.
func cleanText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		ok := r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0xD7FF ||
			r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= utf8.MaxRune
		if !ok {
			return false
		}
	}
	return true
}

// conditionLike reports whether s can be an error condition's element
// name: RFC 6120's are lowercase words joined by hyphens.
func conditionLike(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && c != '-' {
			return false
		}
	}
	return true
}

// readContent reads the element's content up to its end element: the text
// at its top level (nil once it exceeds MaxKey) and the condition of an
// <error/> child, if any. Other children are skipped.
func readContent(r xml.TokenReader) (text []byte, cond string, err error) {
	text = []byte{}
	depth := 0
	inError := false
	for {
		tok, err := r.Token()
		if err == io.EOF {
			return nil, "", io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, "", err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1 && t.Name.Local == "error":
				inError = true
			case depth == 2 && inError && t.Name.Space == nsStanzas && cond == "" && t.Name.Local != "text" && conditionLike(t.Name.Local):
				cond = t.Name.Local
			}
		case xml.EndElement:
			if depth == 0 {
				return text, cond, nil
			}
			if depth == 1 {
				inError = false
			}
			depth--
		case xml.CharData:
			if depth == 0 && text != nil {
				if len(text)+len(t) > MaxKey {
					text = nil
				} else {
					text = append(text, t...)
				}
			}
		}
	}
}

// skipRest reads to the end of the element whose start was consumed and
// returns err (or the read error).
func skipRest(r xml.TokenReader, err error) error {
	if _, _, rerr := readContent(r); rerr != nil {
		return rerr
	}
	return err
}

// Parse reads exactly one element from b (whitespace around it aside).
func Parse(b []byte) (Element, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	var start xml.StartElement
	for {
		tok, err := d.Token()
		if err != nil {
			return Element{}, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if s, ok := tok.(xml.StartElement); ok {
			start = s
			break
		}
		if cd, ok := tok.(xml.CharData); !ok || len(bytes.TrimSpace(cd)) > 0 {
			return Element{}, fmt.Errorf("%w: content before the element", ErrMalformed)
		}
	}
	e, err := Decode(d, start)
	if err != nil {
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotDialback) {
			err = fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		return e, err
	}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return e, nil
		}
		if err != nil {
			return Element{}, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if cd, ok := tok.(xml.CharData); !ok || len(bytes.TrimSpace(cd)) > 0 {
			return Element{}, fmt.Errorf("%w: content after the element", ErrMalformed)
		}
	}
}

// Append appends e as XML to b. The element declares the db prefix itself,
// so it is the same on any stream, whatever its header declared.
func (e Element) Append(b []byte) []byte {
	b = append(b, "<db:"...)
	b = append(b, e.Kind.String()...)
	b = append(b, ` xmlns:db="`+NS+`" from="`...)
	b = appendEscaped(b, e.From)
	b = append(b, `" to="`...)
	b = appendEscaped(b, e.To)
	b = append(b, '"')
	if e.ID != "" {
		b = append(b, ` id="`...)
		b = appendEscaped(b, e.ID)
		b = append(b, '"')
	}
	if e.Type != Request {
		b = append(b, ` type="`...)
		b = appendEscaped(b, string(e.Type))
		b = append(b, '"')
	}
	b = append(b, '>')
	b = appendEscaped(b, e.Key)
	if e.Type == Error && e.Condition != "" {
		b = append(b, `<error type="cancel"><`...)
		b = appendEscaped(b, e.Condition)
		b = append(b, ` xmlns="`+nsStanzas+`"/></error>`...)
	}
	b = append(b, "</db:"...)
	b = append(b, e.Kind.String()...)
	return append(b, '>')
}

// appendEscaped appends s escaped for text or a double-quoted attribute.
func appendEscaped(b []byte, s string) []byte {
	var buf bytes.Buffer
	_ = xml.EscapeText(&buf, []byte(s)) // writes to memory: no error
	return append(b, buf.Bytes()...)
}
