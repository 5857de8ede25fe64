package fanout

import (
	"strings"
	"unicode/utf8"
)

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
