package main

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/internal/xmltok"
)

// c2s is a plain client session (SASL PLAIN on loopback, as testenv's
// DialClient) that sends no presence: the startup baseline times login and
// the roster, nothing else.
type c2s struct {
	sess *xmpp.Session
	conn net.Conn
	done chan struct{}
}

func dialC2S(ctx context.Context, addr, user, host, password string) (*c2s, error) {
	sess, err := testenv.Login(ctx, addr, user+"@"+host+"/bench", password)
	if err != nil {
		return nil, fmt.Errorf("c2s %w", err)
	}
	conn := sess.Conn()
	c := &c2s{sess: sess, conn: conn, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		_ = sess.Serve(xmpp.HandlerFunc(func(xmlstream.TokenReadEncoder, *xml.StartElement) error { return nil }))
	}()
	return c, nil
}

func (c *c2s) close() {
	_ = c.sess.Close()
	_ = c.conn.Close()
	<-c.done
}

// iq sends an IQ with a raw XML payload and returns how many elements named
// count its answer holds, or the error the answer carries.
func (c *c2s) iq(ctx context.Context, to string, typ stanza.IQType, payload, count string) (int, error) {
	iq := stanza.IQ{Type: typ}
	if to != "" {
		iq.To = jid.MustParse(to)
	}
	resp, err := c.sess.SendIQ(ctx, iq.Wrap(xmltok.StripXMLNS(xml.NewDecoder(strings.NewReader(payload)))))
	if err != nil {
		return 0, err
	}
	defer resp.Close()
	n := 0
	isErr := false
	var names []string
	for {
		tok, err := resp.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local == count {
				n++
			}
			if isErr {
				names = append(names, se.Name.Local)
			}
			if se.Name.Local == "iq" {
				for _, a := range se.Attr {
					if a.Name.Local == "type" && a.Value == "error" {
						isErr = true
					}
				}
			}
		}
	}
	if isErr {
		return n, fmt.Errorf("iq %s to %s: error answer %v", typ, to, names)
	}
	return n, nil
}

// writeRoster writes user@host's roster in Prosody's internal storage
// (data/<host>/roster/<user>.dat, a Lua table), as a server that has served a
// popular bot for years holds it: n contacts, all mutually subscribed.
func writeRoster(dataDir, host, user string, n int, contact func(int) string) error {
	dir := filepath.Join(dataDir, host, "roster")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("return {\n\t[false] = {\n\t\t[\"version\"] = 1;\n\t\t[\"pending\"] = {};\n\t};\n")
	for i := range n {
		c := contact(i)
		fmt.Fprintf(&b, "\t[%q] = {\n\t\t[\"subscription\"] = \"both\";\n\t\t[\"groups\"] = {};\n\t\t[\"name\"] = %q;\n\t};\n", c, strings.SplitN(c, "@", 2)[0])
	}
	b.WriteString("};\n")
	return os.WriteFile(filepath.Join(dir, user+".dat"), []byte(b.String()), 0o640)
}

// writeNode writes a PubSub node with n subscribers in Prosody's internal
// storage (data/<encoded host>/pubsub_nodes/<node>.dat), in the form
// mod_pubsub saves it.
func writeNode(dataDir, host, node, owner string, n int, subscriber func(int) string) error {
	dir := filepath.Join(dataDir, strings.ReplaceAll(host, ".", "%2e"), "pubsub_nodes")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "return {\n\t[\"name\"] = %q;\n\t[\"config\"] = {};\n\t[\"affiliations\"] = {\n\t\t[%q] = \"owner\";\n\t};\n\t[\"subscribers\"] = {\n", node, owner)
	for i := range n {
		fmt.Fprintf(&b, "\t\t[%q] = true;\n", subscriber(i))
	}
	b.WriteString("\t};\n};\n")
	return os.WriteFile(filepath.Join(dir, node+".dat"), []byte(b.String()), 0o640)
}
