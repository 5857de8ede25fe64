package xmpp

import (
	"context"
	"fmt"
	"strings"

	"starling.dev/starling/fanout"
)

// DefaultMaxTrack is how many words one JID may track when WithMaxTrack
// does not say.
const DefaultMaxTrack = 25

// WithMaxTrack caps the words (and #tags) one JID may track; zero or less
// means DefaultMaxTrack.
func WithMaxTrack(n int) Option {
	return func(c *Component) {
		if c.im != nil && n > 0 { // New may apply options to a bare Component first
			c.im.maxTrack = n
		}
	}
}

// Track makes the bare JID from track a word or #tag and returns the
// reply. Tracking by IM and by ad-hoc command both come here.
func (im *IM) Track(ctx context.Context, from, word string) (string, error) {
	key, ok := fanout.TrackKey(word)
	if !ok {
		return notAWord(word), nil
	}
	added, full, err := im.store.Track(ctx, from, key, im.maxTrack)
	switch {
	case err != nil:
		return "", err
	case full:
		return fmt.Sprintf("You track %d words, the most one address may track here. Send “untrack <word>” first.", im.maxTrack), nil
	case !added:
		return fmt.Sprintf("You already track %s.", quoteKey(key)), nil
	case strings.HasPrefix(key, "#"):
		return fmt.Sprintf("You now track %s: every post with that hashtag will arrive here, from its author's address, whether you follow them or not.", key), nil
	default:
		return fmt.Sprintf("You now track %s: every post containing it (or #%s) will arrive here, from its author's address, whether you follow them or not.", quoteKey(key), key), nil
	}
}

// Untrack ends from's tracking of a word and returns the reply.
func (im *IM) Untrack(ctx context.Context, from, word string) (string, error) {
	key, ok := fanout.TrackKey(word)
	if !ok {
		return notAWord(word), nil
	}
	removed, err := im.store.Untrack(ctx, from, key)
	if err != nil {
		return "", err
	}
	if !removed {
		return fmt.Sprintf("You were not tracking %s.", quoteKey(key)), nil
	}
	return fmt.Sprintf("You no longer track %s.", quoteKey(key)), nil
}

func (im *IM) tracking(ctx context.Context, from string) (string, error) {
	keys, err := im.store.Tracked(ctx, from)
	if err != nil {
		return "", err
	}
	if len(keys) == 0 {
		return "You track no words. Send “track <word>” to get every post containing it.", nil
	}
	return fmt.Sprintf("You track %s: %s", count(int64(len(keys)), "word"), strings.Join(keys, ", ")), nil
}

func (im *IM) mentions(ctx context.Context, from string, args []string) (string, error) {
	var on bool
	switch {
	case len(args) == 0:
		var err error
		if on, err = im.store.MentionsOn(ctx, from); err != nil {
			return "", err
		}
	case strings.EqualFold(args[0], "on"), strings.EqualFold(args[0], "off"):
		on = strings.EqualFold(args[0], "on")
		if err := im.store.SetMentions(ctx, from, on); err != nil {
			return "", err
		}
	default:
		return usage(VerbMentions), nil
	}
	if on {
		return "Mentions are on: a post mentioning an author this address is verified for arrives here, followed or not. Send “mentions off” to stop that.", nil
	}
	return "Mentions are off: a post mentioning you arrives here only if you follow its author or track one of its words. Send “mentions on” to undo.", nil
}

// quoteKey shows a tracked key in a reply: a word in quotes, a #tag as it is.
func quoteKey(key string) string {
	if strings.HasPrefix(key, "#") {
		return key
	}
	return "“" + key + "”"
}

func notAWord(arg string) string {
	return fmt.Sprintf("“%s” is not one word: track a word or a #tag (letters and digits, up to %d), one at a time.", truncate(arg, 32), fanout.MaxTrackWordChars)
}
