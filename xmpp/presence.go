package xmpp

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"starling.dev/starling"
)

// inPresence is the part of an incoming presence the component reads.
type inPresence struct {
	Type string `xml:"type,attr"`
	From string `xml:"from,attr"`
	To   string `xml:"to,attr"`
}

// statusChars bounds an author's presence status (their latest post).
const statusChars = 140

// handlePresence implements following by roster and learns availability.
// Presence from a follower's resource, to any of our JIDs, tells whether
// they are online; subscriptions to an author's JID are follows. The work is
// queued on the sender's worker (work.go).
func (c *Component) handlePresence(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	var p inPresence
	if err := decodeStanza(t, start, &p); err != nil {
		return nil
	}
	from, to, ok := c.addresses(p.From, p.To)
	if !ok {
		return nil
	}
	c.log.Debug("presence", "type", p.Type, "from", p.From, "to", p.To)
	typ := stanza.PresenceType(p.Type)
	if typ == stanza.ErrorPresence {
		return nil // errors are never answered
	}
	if c.queue(from.Bare().String(), "presence", func(ctx context.Context, out *outbox) { c.presence(ctx, out, typ, from, to) }) {
		return nil
	}
	// Refused: a subscription change is told to try again later. The
	// rest needs no answer; a lost availability update is corrected by
	// the follower's next one, or by the probes after a reconnect.
	if typ == stanza.SubscribePresence || typ == stanza.UnsubscribePresence {
		return writePresenceError(t, to.Bare(), from.Bare(), stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint})
	}
	return nil
}

// presence does the work of one presence stanza, on the sender's worker.
func (c *Component) presence(ctx context.Context, w xmlstream.TokenWriter, typ stanza.PresenceType, from, to jid.JID) {
	follower, ours, author := from.Bare().String(), to.Bare(), to.Localpart()
	switch typ {
	case stanza.AvailablePresence, stanza.UnavailablePresence:
		if _, err := c.store.SetPresence(ctx, follower, from.Resourcepart(), typ == stanza.AvailablePresence); err != nil {
			c.log.Warn("presence not recorded", "from", follower, "err", err)
		}
	case stanza.SubscribePresence:
		_ = c.subscribe(ctx, w, from, ours, author)
	case stanza.UnsubscribePresence:
		if author != "" {
			if _, err := c.im.Unfollow(ctx, follower, author); err != nil && !errors.Is(err, starling.ErrUnknownUser) {
				c.log.Warn("unfollow by roster failed", "from", follower, "author", author, "err", err)
			}
		}
		_ = writePresence(w, ours, from.Bare(), stanza.UnsubscribedPresence, "")
	case stanza.SubscribedPresence, stanza.UnsubscribedPresence:
		// The follower granted (or revoked) our JID their presence.
		if err := c.store.Granted(ctx, follower, ours.String(), typ == stanza.SubscribedPresence); err != nil {
			c.log.Warn("presence grant not recorded", "from", follower, "err", err)
		}
	case stanza.ProbePresence:
		_ = c.answerProbe(ctx, w, from, ours, author)
	}
}

// subscribe answers a subscription request: to an author's JID it follows
// the author; to the service JID it is accepted. Either way we ask for the
// follower's presence in return, once, so we learn when they are online.
func (c *Component) subscribe(ctx context.Context, w xmlstream.TokenWriter, from, ours jid.JID, author string) error {
	follower := from.Bare()
	if author != "" {
		_, _, err := c.im.Follow(ctx, follower.String(), author)
		if err != nil {
			if !errors.Is(err, starling.ErrUnknownUser) {
				c.log.Warn("follow by roster failed", "from", follower, "author", author, "err", err)
			}
			return writePresence(w, ours, follower, stanza.UnsubscribedPresence, "")
		}
	}
	if err := writePresence(w, ours, follower, stanza.SubscribedPresence, ""); err != nil {
		return err
	}
	if err := c.writeAvailable(ctx, w, ours, follower, author); err != nil {
		return err
	}
	return c.askPresence(ctx, w, ours, follower)
}

// askPresence sends a subscription request from ours to the follower the
// first time we meet them, never again: no nagging.
func (c *Component) askPresence(ctx context.Context, w xmlstream.TokenWriter, ours, follower jid.JID) error {
	first, err := c.store.FirstAsk(ctx, follower.String())
	if err != nil {
		c.log.Warn("presence request not recorded", "to", follower, "err", err)
		return nil
	}
	if !first {
		return nil
	}
	return writePresence(w, ours, follower, stanza.SubscribePresence, "")
}

// answerProbe tells a follower an author's presence: available with the
// latest post as status, or unsubscribed if they do not follow.
func (c *Component) answerProbe(ctx context.Context, w xmlstream.TokenWriter, from, ours jid.JID, author string) error {
	follower := from.Bare()
	if author != "" {
		following, err := c.store.Following(ctx, follower.String())
		if err != nil {
			c.log.Warn("probe not answered", "from", follower, "err", err)
			return nil
		}
		if !slices.Contains(following, author) {
			return writePresence(w, ours, follower, stanza.UnsubscribedPresence, "")
		}
	}
	return c.writeAvailable(ctx, w, ours, from, author)
}

// writeAvailable sends our JID's available presence: an author's status is
// their latest post, the service's a hint.
func (c *Component) writeAvailable(ctx context.Context, w xmlstream.TokenWriter, ours, to jid.JID, author string) error {
	status := "Send “help” for the commands."
	if author != "" {
		status = ""
		posts, err := c.store.RecentPosts(ctx, author, 1)
		if err != nil {
			c.log.Warn("latest post for presence", "author", author, "err", err)
		} else if len(posts) > 0 {
			status = fmt.Sprintf("%s (%s ago)", truncate(starling.CleanXMLText(posts[0].Text), statusChars), age(time.Since(posts[0].CreatedAt)))
		}
	}
	return writePresence(w, ours, to, stanza.AvailablePresence, status)
}

// writePresence writes one presence stanza through w.
func writePresence(w xmlstream.TokenWriter, from, to jid.JID, typ stanza.PresenceType, status string) error {
	var payload xml.TokenReader
	if status != "" {
		payload = xmlstream.Wrap(xmlstream.Token(xml.CharData(status)), xml.StartElement{Name: xml.Name{Local: "status"}})
	}
	_, err := xmlstream.Copy(w, stanza.Presence{From: from, To: to, Type: typ}.Wrap(payload))
	return err
}

// writePresenceError writes a presence of type error carrying e.
func writePresenceError(w xmlstream.TokenWriter, from, to jid.JID, e stanza.Error) error {
	_, err := xmlstream.Copy(w, stanza.Presence{From: from, To: to, Type: stanza.ErrorPresence}.Wrap(e.TokenReader()))
	return err
}

// ours reports whether j is the service JID or an author JID of ours.
func (c *Component) ours(j jid.JID) bool {
	return j.Domainpart() == c.domain.Domainpart()
}
