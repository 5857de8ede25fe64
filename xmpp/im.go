package xmpp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"starling.dev/starling/fanout"
)

// Follows is the social graph as the IM commands need it.
type Follows interface {
	Follow(ctx context.Context, author, jid string) (bool, error)
	Unfollow(ctx context.Context, author, jid string) (bool, error)
	Following(ctx context.Context, jid string) ([]string, error)
}

// Authors reads authors' public records.
type Authors interface {
	Profile(ctx context.Context, username string) (fanout.Profile, error)
	RecentPosts(ctx context.Context, username string, n int) ([]fanout.Post, error)
}

// IM answers IM commands. Every call of Reply yields exactly one reply text.
type IM struct {
	domain  string
	follows Follows
	authors Authors
	log     *slog.Logger
	now     func() time.Time
}

// NewIM returns the command interpreter for the component at domain.
func NewIM(domain string, follows Follows, authors Authors, log *slog.Logger) *IM {
	return &IM{domain: domain, follows: follows, authors: authors, log: log, now: time.Now}
}

const sorry = "Sorry, something went wrong on our side. Please try again in a moment."

// Reply interprets body, sent by the bare JID from to the author localpart
// (empty for the service JID), and returns the one reply to send.
func (im *IM) Reply(ctx context.Context, from, author, body string) string {
	cmd := ParseCommand(body)
	if cmd.Verb == "" {
		return im.unknown(cmd, author)
	}
	target := author
	if cmd.Verb.takesUser() {
		switch {
		case len(cmd.Args) > 1:
			return usage(cmd.Verb)
		case len(cmd.Args) == 1:
			u, ok, reason := ParseUser(cmd.Args[0], im.domain)
			if !ok {
				return reason
			}
			target = u
		case target == "":
			return usage(cmd.Verb)
		}
	} else if len(cmd.Args) > 0 {
		return usage(cmd.Verb)
	}
	reply, err := im.run(ctx, cmd.Verb, from, target)
	if errors.Is(err, fanout.ErrUnknownUser) {
		return fmt.Sprintf("There is no user %q on %s. Check the spelling, or send “help”.", target, im.domain)
	}
	if err != nil {
		im.log.Error("im command failed", "verb", cmd.Verb, "err", err)
		return sorry
	}
	return reply
}

func (im *IM) run(ctx context.Context, verb Verb, from, target string) (string, error) {
	switch verb {
	case VerbHelp:
		return im.help(), nil
	case VerbFollow:
		return im.follow(ctx, from, target)
	case VerbUnfollow:
		return im.unfollow(ctx, from, target)
	case VerbFollowing:
		return im.following(ctx, from)
	case VerbLast:
		return im.last(ctx, target)
	case VerbWhois:
		return im.whois(ctx, target)
	default: // on, off
		return "Pausing and resuming deliveries (on/off) is not available yet; “unfollow <user>” stops a single author.", nil
	}
}

func (im *IM) follow(ctx context.Context, from, author string) (string, error) {
	p, err := im.authors.Profile(ctx, author)
	if err != nil {
		return "", err
	}
	added, err := im.follows.Follow(ctx, author, from)
	if err != nil {
		return "", err
	}
	if !added {
		return fmt.Sprintf("You already follow %s.", name(p)), nil
	}
	return fmt.Sprintf("You now follow %s. Their posts will arrive from %s@%s.", name(p), author, im.domain), nil
}

func (im *IM) unfollow(ctx context.Context, from, author string) (string, error) {
	removed, err := im.follows.Unfollow(ctx, author, from)
	if err != nil {
		return "", err
	}
	if !removed {
		if _, err := im.authors.Profile(ctx, author); err != nil {
			return "", err
		}
		return fmt.Sprintf("You were not following %s.", author), nil
	}
	return fmt.Sprintf("You no longer follow %s.", author), nil
}

func (im *IM) following(ctx context.Context, from string) (string, error) {
	authors, err := im.follows.Following(ctx, from)
	if err != nil {
		return "", err
	}
	if len(authors) == 0 {
		return "You follow nobody yet. Send “follow <user>” to start.", nil
	}
	return fmt.Sprintf("You follow %d: %s", len(authors), strings.Join(authors, ", ")), nil
}

func (im *IM) last(ctx context.Context, author string) (string, error) {
	p, err := im.authors.Profile(ctx, author)
	if err != nil {
		return "", err
	}
	posts, err := im.authors.RecentPosts(ctx, author, 1)
	if err != nil {
		return "", err
	}
	if len(posts) == 0 {
		return fmt.Sprintf("%s has not posted yet.", name(p)), nil
	}
	return fmt.Sprintf("%s, %s ago: %s", name(p), age(im.now().Sub(posts[0].CreatedAt)), posts[0].Text), nil
}

func (im *IM) whois(ctx context.Context, author string) (string, error) {
	p, err := im.authors.Profile(ctx, author)
	if err != nil {
		return "", err
	}
	display := p.DisplayName
	if display == "" {
		display = author
	}
	return fmt.Sprintf("%s (%s@%s): %s, %s.", display, author, im.domain, count(p.Followers, "follower"), count(p.Posts, "post")), nil
}

func (im *IM) help() string {
	return "Starling on " + im.domain + " — send one of:\n" +
		"follow <user> — get their posts here (also: sub)\n" +
		"unfollow <user> — stop (also: unsub, leave)\n" +
		"following — whom you follow\n" +
		"last <user> — their latest post (also: get)\n" +
		"whois <user> — who they are\n" +
		"help — this text\n" +
		"<user> may be alice, @alice or alice@" + im.domain + ". Sent to alice@" + im.domain + " itself, “follow” alone follows alice."
}

func (im *IM) unknown(cmd Command, author string) string {
	if cmd.Word == "" {
		return "Send “help” to see what I understand."
	}
	hint := "Send “help” for the list of commands."
	if author != "" {
		hint = "Send “help” for the list of commands, or “follow” to follow " + author + "."
	}
	return fmt.Sprintf("I don't know the command %q. %s", truncate(cmd.Word, 32), hint)
}

func usage(v Verb) string {
	switch v {
	case VerbFollow, VerbUnfollow, VerbLast, VerbWhois:
		return fmt.Sprintf("Usage: %s <user>, for example “%s alice”.", v, v)
	default:
		return fmt.Sprintf("Usage: %s (it takes no arguments).", v)
	}
}

func name(p fanout.Profile) string {
	if p.DisplayName == "" || p.DisplayName == p.Username {
		return p.Username
	}
	return p.DisplayName + " (" + p.Username + ")"
}

func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// count writes n with the noun, plural when n is not 1.
func count(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
