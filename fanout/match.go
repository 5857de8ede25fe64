package fanout

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"starling.dev/starling"
)

// A post reaches, besides the author's followers, whoever tracks one of its
// words, and the verified JIDs of the users it mentions. The rules, which
// the IM command "track" and the fanout stage share through this file:
//
//   - Text is compared after Unicode compatibility normalisation (NFKC) and
//     full case folding, so "Go", "GO" and "ｇｏ" are one word, and so are
//     "Straße" and "STRASSE".
//   - A word is a maximal run of letters, digits, combining marks and "_";
//     everything else separates words. So "go!" holds "go", "don't" holds
//     "don" and "t", and a URL holds its parts. Scripts written without
//     spaces (Chinese, Japanese, Thai) give one word per run of letters.
//   - "#word" is a hashtag when the "#" does not follow a word character
//     ("C#" holds the word "c" only). A post with "#go" holds the keys "#go"
//     and "go": tracking "go" matches the word and the hashtag, tracking
//     "#go" only the hashtag.
//   - Words longer than MaxTrackWordChars are never matched.

// MaxTrackWordChars is the longest word (in code points, after folding)
// that can be tracked or matched.
const MaxTrackWordChars = 64

// wordRune reports whether r is part of a word.
func wordRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// foldText is s as words are compared: NFKC, then case-folded. ASCII text,
// the common case, is only lowercased.
func foldText(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	return cases.Fold().String(norm.NFKC.String(s))
}

// MatchKeys returns the distinct track keys of a post's text, sorted: each
// word, case-folded, and each hashtag as "#" and the word. Whoever tracks
// one of them gets the post.
func MatchKeys(text string) []string {
	t := foldText(text)
	keys := make([]string, 0, 16)
	prevEnd := -1 // where the last word ended
	for i := 0; i < len(t); {
		r, size := utf8.DecodeRuneInString(t[i:])
		if !wordRune(r) {
			i += size
			continue
		}
		start, runes := i, 0
		for i < len(t) {
			r, size = utf8.DecodeRuneInString(t[i:])
			if !wordRune(r) {
				break
			}
			i += size
			runes++
		}
		hashtag := start > 0 && t[start-1] == '#' && prevEnd != start-1
		prevEnd = i
		if runes > MaxTrackWordChars {
			continue
		}
		keys = append(keys, t[start:i])
		if hashtag {
			keys = append(keys, t[start-1:i])
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// TrackKey reads what a user asked to track: one word or one #hashtag,
// returned as MatchKeys would give it. ok is false when arg is not exactly
// that (several words, punctuation, nothing, or a word too long).
func TrackKey(arg string) (key string, ok bool) {
	t := foldText(arg)
	word := strings.TrimPrefix(t, "#")
	if word == "" || utf8.RuneCountInString(word) > MaxTrackWordChars {
		return "", false
	}
	for _, r := range word {
		if !wordRune(r) {
			return "", false
		}
	}
	return t, true
}

// Mentions returns the distinct usernames a text mentions, sorted: "@" and
// a username (letters, digits and "_", any case), not preceded by a word
// character (an e-mail address is no mention) and not followed by one, nor
// by "@" (bob@example.org is an address, not a mention).
func Mentions(text string) []string {
	var users []string
	for i := 0; i < len(text); i++ {
		if text[i] != '@' {
			continue
		}
		if i > 0 {
			if r, _ := utf8.DecodeLastRuneInString(text[:i]); wordRune(r) {
				continue
			}
		}
		end := i + 1
		for end < len(text) && usernameByte(text[end]) {
			end++
		}
		if end < len(text) {
			if r, _ := utf8.DecodeRuneInString(text[end:]); r == '@' || wordRune(r) {
				i = end
				continue
			}
		}
		if name := strings.ToLower(text[i+1 : end]); starling.ValidUsername(name) {
			users = append(users, name)
		}
		i = end - 1
	}
	slices.Sort(users)
	return slices.Compact(users)
}

func usernameByte(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
