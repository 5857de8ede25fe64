package xmltok

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"

	"mellium.im/xmlstream"
)

func TestStripXMLNSReencodesWellFormed(t *testing.T) {
	in := `<query xmlns="jabber:iq:version" xml:lang="en"><name>S</name></query>`
	var b bytes.Buffer
	e := xml.NewEncoder(&b)
	if _, err := xmlstream.Copy(e, StripXMLNS(xml.NewDecoder(strings.NewReader(in)))); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), `xmlns="jabber:iq:version"`); n != 2 { // query and name, once each
		t.Fatalf("%d xmlns attributes in %s", n, b.String())
	}
	var v struct {
		Name string `xml:"jabber:iq:version name"`
	}
	if err := xml.Unmarshal(b.Bytes(), &v); err != nil || v.Name != "S" {
		t.Fatalf("re-encoded %s: %+v %v", b.String(), v, err)
	}
	if strings.Contains(b.String(), `xmlns="jabber:iq:version" xmlns=`) {
		t.Fatalf("duplicate attribute: %s", b.String())
	}
}
