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

// commandTimeout bounds the store calls of one job (work.go), so that a
// worker never hangs behind a store that does not answer.
const commandTimeout = 3 * time.Second

// busyText is the reply to a command refused because its sender's queue is
// full (the store is slow): it was not run, and may be sent again.
const busyText = "Busy right now, sorry: that command was not run. Please try again in a moment."

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
// bad stanza: only a broken stream may end Serve. Each handler decodes its
// stanza and queues the work it asks for (work.go); it writes on the reader
// only what needs no store, and only when the work cannot be queued.
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
	follower := from.Bare().String()
	// Errors are never answered (no loops); a bounced delivery counts
	// against the follower's reachability.
	if m.Error != nil || m.Type == "error" {
		if to.Localpart() != "" {
			c.metrics.bounce()
			c.queue(follower, "bounce", func(ctx context.Context, _ *outbox) {
				if _, err := c.store.Bounced(ctx, follower); err != nil {
					c.log.Warn("bounce not recorded", "from", follower, "err", err)
				}
			})
		}
		return nil
	}
	// Chat states, receipts and other body-less messages need no reply;
	// groupchat and headline are not conversations with us.
	if m.Type == "groupchat" || m.Type == "headline" || m.Body == nil {
		return nil
	}
	var run func(ctx context.Context, out *outbox)
	switch c.limits.take(follower) {
	case slowDown:
		c.metrics.limitedCommand()
		// Through the queue, so that it comes after the replies still
		// owed to this sender.
		run = func(_ context.Context, out *outbox) {
			_ = c.reply(out, from, to.Bare(), "Slow down, please: too many commands at once. I'll listen again in a few seconds.")
		}
	case quiet:
		c.metrics.limitedCommand()
		return nil
	default:
		body := *m.Body
		run = func(ctx context.Context, out *outbox) { c.command(ctx, out, from, to, body) }
	}
	if !c.queue(follower, "message", run) {
		return c.reply(t, from, to.Bare(), busyText)
	}
	return nil
}

// command runs one IM command and writes its one reply.
func (c *Component) command(ctx context.Context, out *outbox, from, to jid.JID, body string) {
	c.metrics.command()
	ans := c.im.Answer(ctx, from.Bare().String(), to.Localpart(), body)
	_ = c.reply(out, from, to.Bare(), ans.Text)
	if ans.Followed {
		// Ask once to see their presence, so posts skip them while they
		// are offline.
		_ = c.askPresence(ctx, out, c.domain, from.Bare())
	}
}

// queue hands run to the worker of the sender's bare JID; false means it
// was refused because that worker is too far behind, and is counted.
func (c *Component) queue(key, kind string, run func(ctx context.Context, out *outbox)) bool {
	if c.work.submit(job{key: key, run: run}) {
		return true
	}
	c.metrics.busyStanza()
	c.log.Debug("handler queue full; stanza refused", "kind", kind, "from", key) // a flood would flood the log too: the metric counts
	return false
}

// reply writes one chat message to w, from the JID the command was sent to.
func (c *Component) reply(w xmlstream.TokenWriter, to, from jid.JID, text string) error {
	msg := stanza.Message{To: to, From: from, Type: stanza.ChatMessage}
	body := xmlstream.Wrap(xmlstream.Token(xml.CharData(starling.CleanXMLText(text))), xml.StartElement{Name: xml.Name{Local: "body"}})
	_, err := xmlstream.Copy(w, msg.Wrap(body))
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
	f, ok = serverJID(from)
	if !ok {
		return f, t, false
	}
	t, ok = serverJID(to)
	if !ok || !c.ours(t) {
		return f, t, false
	}
	return f, t, true
}

// serverJID reads an address the XMPP server wrote on a stanza. The server
// has checked it already, by its own rules: Prosody and ejabberd apply
// stringprep's nodeprep, which accepts localparts the JID library's PRECIS
// rules reject (☃@example.org, say). Such an address is taken as the server
// wrote it rather than ignored: it is who the server vouches sent the
// stanza, and the raw form is what it routes back to. ok is false only for
// an address with no domain.
func serverJID(s string) (jid.JID, bool) {
	if j, err := jid.Parse(s); err == nil {
		return j, true
	}
	u, err := jid.ParseUnsafe(s)
	if err != nil || u.Domainpart() == "" {
		return jid.JID{}, false
	}
	return u.JID, true
}
