package xmpp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"starling.dev/starling"
)

// IM answers IM commands. Every call of Reply yields exactly one reply text.
type IM struct {
	domain       string
	store        Store
	log          *slog.Logger
	now          func() time.Time
	maxFollowing int64
	// maxTrack caps the words one JID may track (WithMaxTrack).
	maxTrack int
	// posting publishes posts by IM; nil when it is not enabled
	// (WithPosting).
	posting *posting
}

// followingPage is how many authors one "following" reply lists.
const followingPage = 20

// newIM returns the command interpreter for the component at domain. A JID
// may follow at most maxFollowing authors (Config.MaxFollowing, defaulted).
func newIM(domain string, store Store, maxFollowing int, log *slog.Logger) *IM {
	return &IM{domain: domain, store: store, log: log, now: time.Now, maxFollowing: int64(maxFollowing), maxTrack: DefaultMaxTrack}
}

// Answer is the outcome of one command.
type Answer struct {
	// Text is the one reply to send.
	Text string
	// Followed is set when the command made the sender follow someone new.
	Followed bool
}

const sorry = "Sorry, something went wrong on our side. Please try again in a moment."

// Reply interprets body, sent by the bare JID from to the author localpart
// (empty for the service JID), and returns the one reply to send.
func (im *IM) Reply(ctx context.Context, from, author, body string) string {
	return im.Answer(ctx, from, author, body).Text
}

// Answer is Reply with what the command changed.
func (im *IM) Answer(ctx context.Context, from, author, body string) Answer {
	cmd := ParseCommand(body)
	if cmd.Verb == "" {
		return Answer{Text: im.unknown(cmd, author)}
	}
	target := author
	if cmd.Verb.takesUser() {
		switch {
		case len(cmd.Args) > 1:
			return Answer{Text: usage(cmd.Verb)}
		case len(cmd.Args) == 1:
			u, ok, reason := ParseUser(cmd.Args[0], im.domain)
			if !ok {
				return Answer{Text: reason}
			}
			target = u
		case target == "":
			return Answer{Text: usage(cmd.Verb)}
		}
	} else if !cmd.Verb.argsFit(len(cmd.Args)) {
		return Answer{Text: usage(cmd.Verb)}
	}
	ans, err := im.run(ctx, cmd, from, target)
	if err != nil {
		return Answer{Text: im.failure(cmd.Verb, target, err)}
	}
	return ans
}

// failure is the reply to a command that failed.
func (im *IM) failure(verb Verb, target string, err error) string {
	if errors.Is(err, starling.ErrUnknownUser) {
		return fmt.Sprintf("There is no user %q on %s. Check the spelling, or send “help”.", target, im.domain)
	}
	im.log.Error("im command failed", "verb", verb, "err", err)
	return sorry
}

func (im *IM) run(ctx context.Context, cmd Command, from, target string) (Answer, error) {
	var text string
	var err error
	switch cmd.Verb {
	case VerbHelp:
		text = im.help()
	case VerbFollow:
		var added bool
		text, added, err = im.Follow(ctx, from, target)
		return Answer{Text: text, Followed: added}, err
	case VerbUnfollow:
		text, err = im.Unfollow(ctx, from, target)
	case VerbFollowing:
		text, err = im.following(ctx, from, cmd.Args)
	case VerbLast:
		text, err = im.last(ctx, target)
	case VerbWhois:
		text, err = im.whois(ctx, target)
	case VerbTrack:
		text, err = im.Track(ctx, from, cmd.Args[0])
	case VerbUntrack:
		text, err = im.Untrack(ctx, from, cmd.Args[0])
	case VerbTracking:
		text, err = im.tracking(ctx, from)
	case VerbMentions:
		text, err = im.mentions(ctx, from, cmd.Args)
	case VerbVerify:
		text, err = im.verify(ctx, from, strings.Join(cmd.Args, ""))
	case VerbPost:
		text, err = im.post(ctx, from, target, cmd.Rest)
	case VerbOff:
		err = im.store.SetPaused(ctx, from, true)
		text = "Deliveries paused: you get no posts until you send “on”. Nothing is kept for you meanwhile."
	default: // on
		err = im.store.SetPaused(ctx, from, false)
		text = "Deliveries are on: new posts of the authors you follow will arrive here."
	}
	return Answer{Text: text}, err
}

// Follow makes the bare JID from follow author, within the cap on follows,
// and returns the reply; added is false when nothing changed. Following by
// IM, by roster and by ad-hoc command all come here.
func (im *IM) Follow(ctx context.Context, from, author string) (text string, added bool, err error) {
	p, err := im.store.Profile(ctx, author)
	if err != nil {
		return "", false, err
	}
	n, err := im.store.FollowingCount(ctx, from)
	if err != nil {
		return "", false, err
	}
	if n >= im.maxFollowing {
		return fmt.Sprintf("You follow %d authors, the most one address may follow here. Unfollow someone first.", n), false, nil
	}
	added, err = im.store.Follow(ctx, author, from)
	if err != nil {
		return "", false, err
	}
	if !added {
		return fmt.Sprintf("You already follow %s.", name(p)), false, nil
	}
	return fmt.Sprintf("You now follow %s. Their posts will arrive from %s@%s.", name(p), author, im.domain), true, nil
}

// Unfollow ends from's following of author and returns the reply.
func (im *IM) Unfollow(ctx context.Context, from, author string) (string, error) {
	removed, err := im.store.Unfollow(ctx, author, from)
	if err != nil {
		return "", err
	}
	if !removed {
		if _, err := im.store.Profile(ctx, author); err != nil {
			return "", err
		}
		return fmt.Sprintf("You were not following %s.", author), nil
	}
	return fmt.Sprintf("You no longer follow %s.", author), nil
}

func (im *IM) following(ctx context.Context, from string, args []string) (string, error) {
	page := 1
	if len(args) == 1 {
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 1 {
			return "Usage: following [page], for example “following 2”.", nil
		}
		page = n
	}
	authors, err := im.store.Following(ctx, from)
	if err != nil {
		return "", err
	}
	if len(authors) == 0 {
		return "You follow nobody yet. Send “follow <user>” to start.", nil
	}
	pages := (len(authors) + followingPage - 1) / followingPage
	if page > pages {
		return fmt.Sprintf("You follow %d; there are only %d page(s).", len(authors), pages), nil
	}
	if pages == 1 {
		return fmt.Sprintf("You follow %d: %s", len(authors), strings.Join(authors, ", ")), nil
	}
	shown := authors[(page-1)*followingPage : min(page*followingPage, len(authors))]
	text := fmt.Sprintf("You follow %d (page %d of %d): %s", len(authors), page, pages, strings.Join(shown, ", "))
	if page < pages {
		text += fmt.Sprintf(" — send “following %d” for more.", page+1)
	}
	return text, nil
}

func (im *IM) last(ctx context.Context, author string) (string, error) {
	p, err := im.store.Profile(ctx, author)
	if err != nil {
		return "", err
	}
	posts, err := im.store.RecentPosts(ctx, author, 1)
	if err != nil {
		return "", err
	}
	if len(posts) == 0 {
		return fmt.Sprintf("%s has not posted yet.", name(p)), nil
	}
	return fmt.Sprintf("%s, %s ago: %s", name(p), age(im.now().Sub(posts[0].CreatedAt)), posts[0].Text), nil
}

func (im *IM) whois(ctx context.Context, author string) (string, error) {
	p, err := im.store.Profile(ctx, author)
	if err != nil {
		return "", err
	}
	posts, err := im.store.RecentPosts(ctx, author, 1)
	if err != nil {
		return "", err
	}
	display := p.DisplayName
	if display == "" {
		display = author
	}
	text := fmt.Sprintf("%s (%s@%s): %s, %s", display, author, im.domain, count(p.Followers, "follower"), count(p.Posts, "post"))
	if len(posts) > 0 {
		text += fmt.Sprintf(", the latest %s ago", age(im.now().Sub(posts[0].CreatedAt)))
	}
	text += "."
	if p.Bio != "" {
		text += " " + p.Bio
	}
	return text, nil
}

func (im *IM) help() string {
	return "Starling on " + im.domain + " — send one of:\n" +
		"follow <user> — get their posts here (also: sub)\n" +
		"unfollow <user> — stop (also: unsub, leave)\n" +
		"following — whom you follow\n" +
		"off — pause all deliveries (also: stop, quit); on — resume\n" +
		"last <user> — their latest post (also: get)\n" +
		"whois <user> — who they are\n" +
		"track <word> — get every post containing the word, from anyone (#tag: the hashtag only)\n" +
		"untrack <word> — stop; tracking — the words you track\n" +
		"mentions off — no posts that only mention you; mentions on — again\n" +
		"verify <code> — link this address to your author account (ask for the code with POST /v1/users/<you>/jids)\n" +
		"post <text> — publish a post, from a verified address (also: p)\n" +
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
	case VerbFollowing:
		return "Usage: following [page], for example “following 2”."
	case VerbTrack, VerbUntrack:
		return fmt.Sprintf("Usage: %s <word>, one word or #tag, for example “%s golang”.", v, v)
	case VerbMentions:
		return "Usage: mentions on, or mentions off."
	case VerbVerify:
		return "Usage: verify <code>, with the code your author account was given."
	case VerbPost:
		return "Usage: post <text>, for example “post Hello from my Jabber client”."
	default:
		return fmt.Sprintf("Usage: %s (it takes no arguments).", v)
	}
}

func name(p starling.Profile) string {
	if n := p.Name(); n != p.Username {
		return n + " (" + p.Username + ")"
	}
	return p.Username
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
