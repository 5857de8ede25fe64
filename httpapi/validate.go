package httpapi

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// postText is the "text" member of a post. encoding/json silently turns
// invalid UTF-8 and unpaired surrogate escapes into U+FFFD; postText refuses
// them instead, so the author learns their text would not arrive as written.
type postText string

// UnmarshalJSON implements json.Unmarshaler.
func (t *postText) UnmarshalJSON(data []byte) error {
	if data[0] != '"' && string(data) != "null" {
		return &json.UnmarshalTypeError{Value: literalKind(data[0]), Type: reflect.TypeFor[string]()}
	}
	if bad, what := badEncoding(data); bad >= 0 {
		return &encodingError{what: what, char: charsBefore(data[:bad]) + 1}
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	*t = postText(s)
	return nil
}

// literalKind names the JSON type of a literal by its first byte, the way
// json.UnmarshalTypeError.Value does.
func literalKind(first byte) string {
	switch first {
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	default:
		return "number"
	}
}

// encodingError is a post text that is not valid Unicode.
type encodingError struct {
	what string
	char int
}

func (e *encodingError) Error() string {
	return fmt.Sprintf("text is not valid UTF-8: %s at character %d", e.what, e.char)
}

// badEncoding scans a JSON string literal, already known to be well formed,
// for an invalid UTF-8 byte or an unpaired surrogate escape. It returns the
// offset of the first one and its description, or -1.
func badEncoding(lit []byte) (int, string) {
	for i := 0; i < len(lit); {
		switch {
		case lit[i] == '\\' && lit[i+1] == 'u':
			size, ok := surrogateEscape(lit[i:])
			if !ok {
				return i, "unpaired surrogate U+" + strings.ToUpper(string(lit[i+2:i+6]))
			}
			i += size
		case lit[i] == '\\':
			i += 2
		default:
			r, size := utf8.DecodeRune(lit[i:])
			if r == utf8.RuneError && size == 1 {
				return i, fmt.Sprintf("byte 0x%02X", lit[i])
			}
			i += size
		}
	}
	return -1, ""
}

// surrogateEscape measures the \uXXXX escape (or surrogate pair of escapes)
// at the start of lit and reports whether it denotes a code point.
func surrogateEscape(lit []byte) (int, bool) {
	hi := hex4(lit[2:6])
	switch {
	case hi < 0xD800 || hi > 0xDFFF:
		return 6, true
	case hi >= 0xDC00:
		return 0, false
	case len(lit) >= 12 && lit[6] == '\\' && lit[7] == 'u':
		lo := hex4(lit[8:12])
		return 12, lo >= 0xDC00 && lo <= 0xDFFF
	default:
		return 0, false
	}
}

func hex4(b []byte) rune {
	v, err := strconv.ParseUint(string(b), 16, 32)
	if err != nil {
		return -1
	}
	return rune(v)
}

// charsBefore counts the code points a prefix of a JSON string literal
// decodes to. The prefix ends between two tokens of the literal, so closing
// it with a quote leaves a well-formed literal.
func charsBefore(prefix []byte) int {
	var s string
	if err := json.Unmarshal(append(append([]byte(nil), prefix...), '"'), &s); err != nil {
		return 0
	}
	return utf8.RuneCountInString(s)
}
