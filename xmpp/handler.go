package xmpp

import (
	"context"
	"encoding/xml"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"starling.dev/starling"
)

// commandTimeout bounds the store calls of one IM command; the handler runs
// while mellium holds the stream's read lock, so it must not hang.
const commandTimeout = 3 * time.Second

// inMessage is the part of an incoming message the component reads.
type inMessage struct {
	Type  string    `xml:"type,attr"`
	From  string    `xml:"from,attr"`
	To    string    `xml:"to,attr"`
	ID    string    `xml:"id,attr"`
	Body  *string   `xml:"body"`
	Error *struct{} `xml:"error"`
}

// handler dispatches what the server sends. It never returns an error for a
// bad stanza: only a broken stream may end Serve.
func (c *Component) handler() xmpp.Handler {
	return xmpp.HandlerFunc(func(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		switch start.Name.Local {
		case "iq":
			return c.handleIQ(t, start)
		case "message":
			return c.handleMessage(t, start)
		case "presence":
			return c.handlePresence(t, start)
		}
		return nil
	})
}

func (c *Component) handleMessage(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	var m inMessage
	if err := decodeStanza(t, start, &m); err != nil {
		c.log.Debug("undecodable message ignored", "err", err)
		return nil
	}
	from, to, ok := c.addresses(m.From, m.To)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	// Errors are never answered (no loops); a bounced delivery counts
	// against the follower's reachability.
	if m.Error != nil || m.Type == "error" {
		if to.Localpart() != "" {
			c.metrics.bounce()
			if _, err := c.store.Bounced(ctx, from.Bare().String()); err != nil {
				c.log.Warn("bounce not recorded", "from", from.Bare(), "err", err)
			}
		}
		return nil
	}
	// Chat states, receipts and other body-less messages need no reply;
	// groupchat and headline are not conversations with us.
	if m.Type == "groupchat" || m.Type == "headline" || m.Body == nil {
		return nil
	}
	follower := from.Bare().String()
	switch c.limits.take(follower) {
	case slowDown:
		c.metrics.limitedCommand()
		return c.reply(t, from, to.Bare(), "Slow down, please: too many commands at once. I'll listen again in a few seconds.")
	case quiet:
		c.metrics.limitedCommand()
		return nil
	}
	c.metrics.command()
	ans := c.im.Answer(ctx, follower, to.Localpart(), *m.Body)
	if err := c.reply(t, from, to.Bare(), ans.Text); err != nil {
		return err
	}
	if ans.Followed {
		// Ask once to see their presence, so posts skip them while
		// they are offline.
		return c.askPresence(ctx, t, c.domain, from.Bare())
	}
	return nil
}

// reply writes one chat message through the handler's encoder, from the JID
// the command was sent to.
func (c *Component) reply(t xmlstream.TokenReadEncoder, to, from jid.JID, text string) error {
	msg := stanza.Message{To: to, From: from, Type: stanza.ChatMessage}
	body := xmlstream.Wrap(xmlstream.Token(xml.CharData(starling.CleanXMLText(text))), xml.StartElement{Name: xml.Name{Local: "body"}})
	_, err := xmlstream.Copy(t, msg.Wrap(body))
	return err
}

// decodeStanza decodes the stanza the handler was given. mellium hands the
// start element separately from the rest, so it is put back in front.
func decodeStanza(t xml.TokenReader, start *xml.StartElement, v any) error {
	return xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t)).Decode(v)
}

// addresses parses a stanza's from and to. ok is false unless from is set
// and to is the service JID or an author JID of ours.
func (c *Component) addresses(from, to string) (f, t jid.JID, ok bool) {
	f, err := jid.Parse(from)
	if err != nil || from == "" {
		return f, t, false
	}
	t, err = jid.Parse(to)
	if err != nil || !c.ours(t) {
		return f, t, false
	}
	return f, t, true
}
