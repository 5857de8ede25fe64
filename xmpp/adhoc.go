package xmpp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"strings"

	"starling.dev/starling/fanout"
)

// XEP-0050 ad-hoc commands on the service JID: Follow, Unfollow, Following,
// Track and Untrack, as data forms, so that clients such as Gajim show them
// as menu entries. They are stateless: the submitted form carries all there
// is.

type adhocCmd struct {
	node, name string
}

var adhocCommands = []adhocCmd{
	{node: "follow", name: "Follow an author"},
	{node: "unfollow", name: "Unfollow an author"},
	{node: "following", name: "Authors I follow"},
	{node: "track", name: "Track a word"},
	{node: "untrack", name: "Untrack a word"},
}

func adhocCommand(node string) *adhocCmd {
	for i := range adhocCommands {
		if adhocCommands[i].node == node {
			return &adhocCommands[i]
		}
	}
	return nil
}

type dataForm struct {
	XMLName      xml.Name    `xml:"jabber:x:data x"`
	Type         string      `xml:"type,attr"`
	Title        string      `xml:"title,omitempty"`
	Instructions string      `xml:"instructions,omitempty"`
	Fields       []formField `xml:"field"`
}

type formField struct {
	Var      string       `xml:"var,attr,omitempty"`
	Type     string       `xml:"type,attr,omitempty"`
	Label    string       `xml:"label,attr,omitempty"`
	Required *struct{}    `xml:"required"`
	Values   []string     `xml:"value"`
	Options  []formOption `xml:"option"`
}

type formOption struct {
	Label string `xml:"label,attr,omitempty"`
	Value string `xml:"value"`
}

// value returns the first value of the field var, or "".
func (f *dataForm) value(name string) string {
	if f == nil {
		return ""
	}
	for _, fl := range f.Fields {
		if fl.Var == name && len(fl.Values) > 0 {
			return strings.TrimSpace(fl.Values[0])
		}
	}
	return ""
}

type commandNote struct {
	Type string `xml:"type,attr"`
	Text string `xml:",chardata"`
}

type commandActions struct {
	Execute  string    `xml:"execute,attr,omitempty"`
	Complete *struct{} `xml:"complete"`
}

type commandPayload struct {
	XMLName   xml.Name        `xml:"http://jabber.org/protocol/commands command"`
	Node      string          `xml:"node,attr"`
	SessionID string          `xml:"sessionid,attr"`
	Status    string          `xml:"status,attr"`
	Actions   *commandActions `xml:"actions"`
	Note      *commandNote    `xml:"note"`
	Form      *dataForm       `xml:"jabber:x:data x"`
}

// adhoc runs one stage of a command. The first stage of Follow and Unfollow
// returns the form; a submitted form completes them.
func (c *Component) adhoc(ctx context.Context, req iqRequest) (xml.TokenReader, error) {
	p := req.stanza.Payload
	cmd := adhocCommand(p.Node)
	if cmd == nil {
		return nil, errNotFound
	}
	if !c.limits.allow(req.from.Bare().String()) {
		return nil, errSlowDown
	}
	out := commandPayload{Node: cmd.node, SessionID: p.SessionID}
	if out.SessionID == "" {
		out.SessionID = newSessionID()
	}
	follower := req.from.Bare().String()
	switch {
	case p.Action == "cancel":
		out.Status = "canceled"
	case cmd.node == "following":
		authors, err := c.store.Following(ctx, follower)
		if err != nil {
			return nil, err
		}
		out.Status = "completed"
		out.Form = c.followingForm(authors)
	case p.Form == nil || p.Form.Type != "submit":
		form, err := c.askForm(ctx, cmd.node, follower)
		if err != nil {
			return nil, err
		}
		out.Status, out.Form = "executing", form
		out.Actions = &commandActions{Execute: "complete", Complete: &struct{}{}}
	default:
		text, ok := c.runForm(ctx, cmd.node, follower, p.Form)
		out.Status = "completed"
		out.Note = &commandNote{Type: "info", Text: text}
		if !ok {
			out.Note.Type = "error"
		}
	}
	return marshal(out), nil
}

// askForm is the form of Follow (a username), Unfollow (one of the
// authors the follower follows), Track (a word) or Untrack (one of the
// words the follower tracks).
func (c *Component) askForm(ctx context.Context, node, follower string) (*dataForm, error) {
	switch node {
	case "follow":
		return &dataForm{Type: "form", Title: "Follow an author", Instructions: "Their posts will arrive as chat messages from their address.",
			Fields: []formField{{Var: "user", Type: "text-single", Label: "Username (alice or alice@" + c.cfg.Domain + ")", Required: &struct{}{}}}}, nil
	case "track":
		return &dataForm{Type: "form", Title: "Track a word", Instructions: "Every post containing it will arrive as a chat message from its author's address, whether you follow them or not.",
			Fields: []formField{{Var: "word", Type: "text-single", Label: "Word, or #tag for the hashtag only", Required: &struct{}{}}}}, nil
	case "untrack":
		words, err := c.store.Tracked(ctx, follower)
		if err != nil {
			return nil, err
		}
		return &dataForm{Type: "form", Title: "Untrack a word", Fields: []formField{listField("word", "Word", words)}}, nil
	}
	authors, err := c.store.Following(ctx, follower)
	if err != nil {
		return nil, err
	}
	return &dataForm{Type: "form", Title: "Unfollow an author", Fields: []formField{listField("user", "Author", authors)}}, nil
}

// listField is a required choice of one of values.
func listField(name, label string, values []string) formField {
	f := formField{Var: name, Type: "list-single", Label: label, Required: &struct{}{}}
	for _, v := range values {
		f.Options = append(f.Options, formOption{Label: v, Value: v})
	}
	return f
}

// runForm performs a submitted Follow, Unfollow, Track or Untrack and
// returns the note.
func (c *Component) runForm(ctx context.Context, node, follower string, form *dataForm) (string, bool) {
	var text string
	var err error
	switch node {
	case "track", "untrack":
		word := form.value("word")
		if _, ok := fanout.TrackKey(word); !ok {
			return notAWord(word), false
		}
		if node == "track" {
			text, err = c.im.Track(ctx, follower, word)
		} else {
			text, err = c.im.Untrack(ctx, follower, word)
		}
	default:
		user, ok, reason := ParseUser(form.value("user"), c.cfg.Domain)
		if !ok {
			return reason, false
		}
		if node == "follow" {
			text, _, err = c.im.Follow(ctx, follower, user)
		} else {
			text, err = c.im.Unfollow(ctx, follower, user)
		}
		if err != nil {
			return c.im.failure(Verb(node), user, err), false
		}
		return text, true
	}
	if err != nil {
		return c.im.failure(Verb(node), "", err), false
	}
	return text, true
}

func (c *Component) followingForm(authors []string) *dataForm {
	values := make([]string, len(authors))
	for i, a := range authors {
		values[i] = a + "@" + c.cfg.Domain
	}
	title := "You follow nobody yet"
	if len(authors) > 0 {
		title = "Authors you follow"
	}
	return &dataForm{Type: "result", Title: title, Fields: []formField{{Var: "following", Type: "jid-multi", Label: "Following", Values: values}}}
}

func newSessionID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
