package starling

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits of the text rules.
const (
	// MaxUsernameLen is the longest username, in bytes (all ASCII).
	MaxUsernameLen = 32
	// MaxDisplayNameChars bounds display names, which clients show as a nick.
	MaxDisplayNameChars = 64
	// DefaultMaxPostChars is the longest post, in code points, unless
	// configured otherwise.
	DefaultMaxPostChars = 500
)

// UsernameRule says in words what ValidUsername accepts, for error messages.
const UsernameRule = "1 to 32 characters of a-z, 0-9 and _ (^[a-z0-9_]{1,32}$)"

// ValidUsername reports whether s matches ^[a-z0-9_]{1,32}$. Every such
// username is also a valid JID localpart.
func ValidUsername(s string) bool {
	if len(s) == 0 || len(s) > MaxUsernameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// IsXMLChar reports whether r matches the Char production of XML 1.0:
// #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
// A post travels as XML character data, so it may hold only these.
func IsXMLChar(r rune) bool {
	switch {
	case r == 0x9 || r == 0xA || r == 0xD:
		return true
	case r >= 0x20 && r <= 0xD7FF:
		return true
	case r >= 0xE000 && r <= 0xFFFD:
		return true
	default:
		return r >= 0x10000 && r <= utf8.MaxRune
	}
}

// XMLRuneAt decodes the rune at s[i:] and reports whether XML can carry it
// (valid UTF-8 and an XML Char). It is the one walk behind CheckXMLText and
// appendXMLText.
func XMLRuneAt(s string, i int) (r rune, size int, ok bool) {
	r, size = utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size <= 1 {
		return r, size, false
	}
	return r, size, IsXMLChar(r)
}

// CheckXMLText counts the code points of the named field s and reports the
// first one that is not valid UTF-8 or not allowed in XML 1.0, naming it
// and its 1-based position.
func CheckXMLText(field, s string) (int, error) {
	n := 0
	for i := 0; i < len(s); {
		r, size, ok := XMLRuneAt(s, i)
		n++
		if !ok {
			if r == utf8.RuneError && size <= 1 {
				return n, fmt.Errorf("%s is not valid UTF-8: byte 0x%02X at character %d", field, s[i], n)
			}
			return n, fmt.Errorf("%s contains %U at character %d, which XML cannot carry", field, r, n)
		}
		i += size
	}
	return n, nil
}

// appendXMLText appends s to dst without the bytes XML 1.0 cannot carry
// (invalid UTF-8 and characters outside Char). It escapes nothing.
func appendXMLText(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		_, size, ok := XMLRuneAt(s, i)
		if ok {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// CleanXMLText returns s without the characters XML 1.0 cannot carry and
// without invalid UTF-8; it returns s itself when nothing is dropped.
func CleanXMLText(s string) string {
	if _, err := CheckXMLText("", s); err == nil {
		return s
	}
	return string(appendXMLText(make([]byte, 0, len(s)), s))
}

// CheckPostText reports why text cannot be a post of at most max code
// points, or nil.
func CheckPostText(text string, max int) error {
	n, err := CheckXMLText("text", text)
	if err != nil {
		return err
	}
	if strings.TrimSpace(text) == "" {
		return fmt.Errorf("text is empty or only whitespace")
	}
	if n > max {
		return fmt.Errorf("text has %d characters; the limit is %d", n, max)
	}
	return nil
}

// CheckDisplayName reports why name cannot be a display name, or nil.
func CheckDisplayName(name string) error {
	n, err := CheckXMLText("display_name", name)
	if err != nil {
		return err
	}
	if n > MaxDisplayNameChars {
		return fmt.Errorf("display_name has %d characters; the limit is %d", n, MaxDisplayNameChars)
	}
	return nil
}

var newlines = strings.NewReplacer("\r\n", "\n", "\r", "\n")

// NormalizeNewlines turns CR LF and lone CR into LF. XMPP servers parse a
// raw CR as LF on its way to the client, so a post is stored and returned
// the way it will arrive.
func NormalizeNewlines(s string) string {
	if !strings.ContainsRune(s, '\r') {
		return s
	}
	return newlines.Replace(s)
}
