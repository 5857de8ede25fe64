// Package xmltok holds a token-stream fix shared by the component, the test
// client and the benchmark tool.
package xmltok

import (
	"encoding/xml"

	"mellium.im/xmlstream"
)

// StripXMLNS drops the xmlns attributes encoding/xml's decoder reports beside
// the namespace it already put in each element's name. Re-encoded, they would
// be written twice, a duplicate attribute that ends an XMPP stream.
func StripXMLNS(r xml.TokenReader) xml.TokenReader {
	return xmlstream.Map(func(t xml.Token) xml.Token {
		start, ok := t.(xml.StartElement)
		if !ok {
			return t
		}
		attrs := start.Attr[:0:0]
		for _, a := range start.Attr {
			if a.Name.Space != "" || a.Name.Local != "xmlns" {
				attrs = append(attrs, a)
			}
		}
		start.Attr = attrs
		return start
	})(r)
}
