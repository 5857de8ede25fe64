package xmpp

import (
	"strings"
	"unicode"

	"starling.dev/starling"
)

// Verb is a canonical IM command name.
type Verb string

// The IM commands of the contract (docs/ARCHITECTURE.md, "Followers in their
// Jabber client"), after aliases are resolved.
const (
	VerbHelp      Verb = "help"
	VerbFollow    Verb = "follow"
	VerbUnfollow  Verb = "unfollow"
	VerbFollowing Verb = "following"
	VerbLast      Verb = "last"
	VerbWhois     Verb = "whois"
	VerbOn        Verb = "on"
	VerbOff       Verb = "off"
	VerbTrack     Verb = "track"
	VerbUntrack   Verb = "untrack"
	VerbTracking  Verb = "tracking"
	VerbMentions  Verb = "mentions"
	VerbVerify    Verb = "verify"
	VerbPost      Verb = "post"
)

var verbs = map[string]Verb{
	"help": VerbHelp, "?": VerbHelp,
	"follow": VerbFollow, "sub": VerbFollow,
	"unfollow": VerbUnfollow, "unsub": VerbUnfollow, "leave": VerbUnfollow,
	"following": VerbFollowing,
	"last":      VerbLast, "get": VerbLast,
	"whois": VerbWhois,
	"on":    VerbOn,
	"off":   VerbOff, "stop": VerbOff, "quit": VerbOff,
	"track":    VerbTrack,
	"untrack":  VerbUntrack,
	"tracking": VerbTracking,
	"mentions": VerbMentions,
	"verify":   VerbVerify,
	"post":     VerbPost, "p": VerbPost,
}

// takesUser reports whether the verb names an author (given, or implied by
// the author JID the command was sent to).
func (v Verb) takesUser() bool {
	switch v {
	case VerbFollow, VerbUnfollow, VerbLast, VerbWhois:
		return true
	}
	return false
}

// argsFit reports whether a verb that names no author takes n arguments.
func (v Verb) argsFit(n int) bool {
	switch v {
	case VerbFollowing, VerbMentions:
		return n <= 1
	case VerbTrack, VerbUntrack:
		return n == 1
	case VerbVerify, VerbPost:
		return n >= 1
	}
	return n == 0
}

// Command is one parsed IM command.
type Command struct {
	// Verb is empty when the first word is not a known command.
	Verb Verb
	// Word is the first word as typed (for replies to unknown commands).
	Word string
	// Args are the remaining words.
	Args []string
	// Rest is the body after the first word, as written (line breaks
	// kept), without the whitespace around it: the text of a post.
	Rest string
}

// ParseCommand reads a message body as a command: case-insensitive verb,
// whitespace-separated arguments, surrounding whitespace ignored.
func ParseCommand(body string) Command {
	fields := strings.FieldsFunc(body, unicode.IsSpace)
	if len(fields) == 0 {
		return Command{}
	}
	word := fields[0]
	rest := strings.TrimLeftFunc(body, unicode.IsSpace)[len(word):]
	return Command{Verb: verbs[strings.ToLower(word)], Word: word, Args: fields[1:], Rest: strings.TrimSpace(rest)}
}

// ParseUser turns what a follower typed for an author (alice, @alice,
// alice@domain) into a username. ok is false when it cannot name a user of
// this domain; reason then says why, for the reply.
func ParseUser(arg, domain string) (user string, ok bool, reason string) {
	s := strings.TrimPrefix(arg, "@")
	if local, host, found := strings.Cut(s, "@"); found {
		if !strings.EqualFold(host, domain) {
			return "", false, "I only know users of " + domain + "."
		}
		s = local
	}
	s = strings.ToLower(s)
	if !starling.ValidUsername(s) {
		return "", false, "“" + arg + "” is not a username here (letters, digits and _, up to 32)."
	}
	return s, true, ""
}
