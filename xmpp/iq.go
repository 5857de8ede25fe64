package xmpp

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"strings"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"starling.dev/starling"
	"starling.dev/starling/internal/xmltok"
)

// Namespaces the component answers.
const (
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	nsPing       = "urn:xmpp:ping"
	nsVersion    = "jabber:iq:version"
	nsVCard      = "vcard-temp"
	nsCommands   = "http://jabber.org/protocol/commands"
	nsDataForms  = "jabber:x:data"
)

// SoftwareName and SoftwareVersion answer XEP-0092 queries.
const (
	SoftwareName    = "Starling"
	SoftwareVersion = "0.1.0"
)

// inIQ is an incoming IQ with its one payload element.
type inIQ struct {
	ID      string `xml:"id,attr"`
	Type    string `xml:"type,attr"`
	From    string `xml:"from,attr"`
	To      string `xml:"to,attr"`
	Payload struct {
		XMLName   xml.Name
		Node      string    `xml:"node,attr"`
		Action    string    `xml:"action,attr"`
		SessionID string    `xml:"sessionid,attr"`
		Form      *dataForm `xml:"jabber:x:data x"`
	} `xml:",any"`
}

// iqRequest is a decoded get or set addressed to one of our JIDs.
type iqRequest struct {
	stanza inIQ
	iq     stanza.IQ // for Result and Error, with to and from parsed
	from   jid.JID
	author string // "" for the service JID
}

// handleIQ settles delivery pings on the reader, at once: their answers
// must never wait behind anything. A get or set addressed to us is queued
// on the sender's worker (work.go), which answers it with a result or an
// error, never with silence.
func (c *Component) handleIQ(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	var in inIQ
	if err := decodeStanza(t, start, &in); err != nil {
		return c.undecodableIQ(t, start)
	}
	switch stanza.IQType(in.Type) {
	case stanza.ResultIQ:
		// The server's result proves it has routed everything written
		// before the ping; but only the server's own answer does: anyone
		// can send us a result. It may be another replica's (see Relay).
		if strings.HasPrefix(in.ID, pingPrefix) && c.fromPingTarget(in.From) {
			c.answered(in.ID)
		}
		return nil
	case stanza.ErrorIQ:
		// An error proves nothing: a server shutting down answers the
		// stanzas it still holds with errors, the messages before the
		// ping among them, so the chunk is sent again. (Another replica's
		// ping, answered with an error here, times out there and is sent
		// again too.)
		if strings.HasPrefix(in.ID, pingPrefix) && c.fromPingTarget(in.From) {
			c.pings.resolve(in.ID, errPingRefused)
		}
		return nil
	case stanza.GetIQ, stanza.SetIQ:
	default:
		return nil // not a request: nothing to answer
	}
	from, to, ok := c.addresses(in.From, in.To)
	if !ok {
		return nil // no sender to answer; the server routes only ours to us
	}
	req := iqRequest{
		stanza: in,
		iq:     stanza.IQ{ID: in.ID, Type: stanza.IQType(in.Type), From: from, To: to},
		from:   from,
		author: to.Localpart(),
	}
	if !c.queue(from.Bare().String(), "iq", func(ctx context.Context, out *outbox) { c.answer(ctx, out, req) }) {
		return c.iqError(t, req, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint})
	}
	return nil
}

// answer writes the result of a get or set, or the error it met.
func (c *Component) answer(ctx context.Context, w xmlstream.TokenWriter, req iqRequest) {
	if req.author != "" {
		if _, err := c.store.Profile(ctx, req.author); err != nil {
			_ = c.iqError(w, req, errCondition(err))
			return
		}
	}
	payload, err := c.answerIQ(ctx, req)
	if err != nil {
		_ = c.iqError(w, req, errCondition(err))
		return
	}
	_, _ = xmlstream.Copy(w, req.iq.Result(payload))
}

// undecodableIQ answers a get or set whose payload could not be decoded
// with bad-request; anything else undecodable is dropped.
func (c *Component) undecodableIQ(w xmlstream.TokenWriter, start *xml.StartElement) error {
	var id, typ, fromAttr, toAttr string
	for _, a := range start.Attr {
		switch a.Name.Local {
		case "id":
			id = a.Value
		case "type":
			typ = a.Value
		case "from":
			fromAttr = a.Value
		case "to":
			toAttr = a.Value
		}
	}
	from, to, ok := c.addresses(fromAttr, toAttr)
	if !ok || (typ != string(stanza.GetIQ) && typ != string(stanza.SetIQ)) {
		return nil
	}
	req := iqRequest{iq: stanza.IQ{ID: id, Type: stanza.IQType(typ), From: from, To: to}, from: from}
	return c.iqError(w, req, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
}

// Errors answerIQ returns, mapped to stanza error conditions.
var (
	errNotFound       = errors.New("item-not-found")
	errNotImplemented = errors.New("feature-not-implemented")
	errBadRequest     = errors.New("bad-request")
	errSlowDown       = errors.New("resource-constraint")
)

func errCondition(err error) stanza.Error {
	switch {
	case errors.Is(err, starling.ErrUnknownUser), errors.Is(err, errNotFound):
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	case errors.Is(err, errNotImplemented):
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented}
	case errors.Is(err, errBadRequest):
		return stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	case errors.Is(err, errSlowDown):
		return stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint}
	}
	return stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
}

func (c *Component) iqError(t xmlstream.TokenWriter, req iqRequest, e stanza.Error) error {
	_, err := xmlstream.Copy(t, req.iq.Error(e))
	return err
}

// answerIQ returns the payload of the result, or an error for an error
// reply.
func (c *Component) answerIQ(ctx context.Context, req iqRequest) (xml.TokenReader, error) {
	name := req.stanza.Payload.XMLName
	get := req.iq.Type == stanza.GetIQ
	switch {
	case get && name.Space == nsPing && name.Local == "ping":
		return nil, nil
	case get && name.Space == nsDiscoInfo:
		return c.discoInfo(ctx, req.author, req.stanza.Payload.Node)
	case get && name.Space == nsDiscoItems:
		return c.discoItems(req.author, req.stanza.Payload.Node)
	case get && name.Space == nsVersion && req.author == "":
		return marshal(versionQuery{Name: SoftwareName, Version: SoftwareVersion}), nil
	case get && name.Space == nsVCard:
		return c.vcard(ctx, req.author)
	case !get && name.Space == nsCommands && name.Local == "command" && req.author == "":
		return c.adhoc(ctx, req)
	}
	return nil, errNotImplemented
}

type identity struct {
	Category string `xml:"category,attr"`
	Type     string `xml:"type,attr"`
	Name     string `xml:"name,attr,omitempty"`
}

type feature struct {
	Var string `xml:"var,attr"`
}

type discoInfoQuery struct {
	XMLName    xml.Name   `xml:"http://jabber.org/protocol/disco#info query"`
	Node       string     `xml:"node,attr,omitempty"`
	Identities []identity `xml:"identity"`
	Features   []feature  `xml:"feature"`
}

type discoItem struct {
	JID  string `xml:"jid,attr"`
	Node string `xml:"node,attr,omitempty"`
	Name string `xml:"name,attr,omitempty"`
}

type discoItemsQuery struct {
	XMLName xml.Name    `xml:"http://jabber.org/protocol/disco#items query"`
	Node    string      `xml:"node,attr,omitempty"`
	Items   []discoItem `xml:"item"`
}

type versionQuery struct {
	XMLName xml.Name `xml:"jabber:iq:version query"`
	Name    string   `xml:"name"`
	Version string   `xml:"version"`
}

type vcardTemp struct {
	XMLName  xml.Name `xml:"vcard-temp vCard"`
	FN       string   `xml:"FN"`
	Nickname string   `xml:"NICKNAME,omitempty"`
	Desc     string   `xml:"DESC,omitempty"`
	URL      string   `xml:"URL,omitempty"`
}

func features(vars ...string) []feature {
	out := make([]feature, len(vars))
	for i, v := range vars {
		out[i] = feature{Var: v}
	}
	return out
}

// discoInfo describes the service JID (and its command nodes) or an author.
func (c *Component) discoInfo(ctx context.Context, author, node string) (xml.TokenReader, error) {
	q := discoInfoQuery{Node: node}
	switch {
	case author != "" && node == "":
		p, err := c.store.Profile(ctx, author)
		if err != nil {
			return nil, err
		}
		q.Identities = []identity{{Category: "client", Type: "bot", Name: p.Name()}}
		q.Features = features(nsDiscoInfo, nsPing, nsVCard, nsSID)
	case author != "":
		return nil, errNotFound
	case node == "":
		q.Identities = []identity{{Category: "component", Type: "generic", Name: SoftwareName + " microblog"}}
		q.Features = features(nsDiscoInfo, nsDiscoItems, nsPing, nsVersion, nsVCard, nsCommands, nsSID)
	case node == nsCommands:
		q.Identities = []identity{{Category: "automation", Type: "command-list", Name: "Commands"}}
		q.Features = features(nsCommands)
	case adhocCommand(node) != nil:
		q.Identities = []identity{{Category: "automation", Type: "command-node", Name: adhocCommand(node).name}}
		q.Features = features(nsCommands, nsDataForms)
	default:
		return nil, errNotFound
	}
	return marshal(q), nil
}

// discoItems lists the ad-hoc commands; nothing else has items.
func (c *Component) discoItems(author, node string) (xml.TokenReader, error) {
	q := discoItemsQuery{Node: node}
	switch {
	case author == "" && node == nsCommands:
		for _, cmd := range adhocCommands {
			q.Items = append(q.Items, discoItem{JID: c.cfg.Domain, Node: cmd.node, Name: cmd.name})
		}
	case node != "":
		return nil, errNotFound
	}
	return marshal(q), nil
}

// vcard gives clients a name to show for an author ("Alice", not a bare
// address) and for the service.
func (c *Component) vcard(ctx context.Context, author string) (xml.TokenReader, error) {
	if author == "" {
		return marshal(vcardTemp{FN: SoftwareName, Desc: "Microblog posts over XMPP. Send “help” for the commands."}), nil
	}
	p, err := c.store.Profile(ctx, author)
	if err != nil {
		return nil, err
	}
	return marshal(vcardTemp{FN: p.Name(), Nickname: author, Desc: p.Bio, URL: "xmpp:" + author + "@" + c.cfg.Domain}), nil
}

// marshal turns a payload struct into tokens. encoding/xml is fine here: IQs
// are rare, unlike deliveries.
func marshal(v any) xml.TokenReader {
	b, err := xml.Marshal(v)
	if err != nil {
		panic("xmpp: marshal of a fixed payload type: " + err.Error())
	}
	return xmltok.StripXMLNS(xml.NewDecoder(bytes.NewReader(b)))
}

// fromPingTarget reports whether from is the JID delivery pings go to
// (Config.PingTo, the server's own host by default), compared as JIDs.
func (c *Component) fromPingTarget(from string) bool {
	j, err := jid.Parse(from)
	return err == nil && j.Equal(c.pingTo)
}
