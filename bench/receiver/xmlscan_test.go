package main

import (
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// scanAll reads src with the scanner, its buffer starting at size bytes,
// through chunks of the reader given, and returns the tokens in a normal
// form (see refAll), or the error.
func scanAll(src io.Reader, size int) ([]string, error) {
	s := newScanner(src, size, 1<<20)
	var out []string
	for {
		tok, err := s.next()
		if err == io.EOF {
			return merge(out), nil
		}
		if err != nil {
			return merge(out), err
		}
		switch tok.kind {
		case kStart:
			var attrs []string
			for _, a := range tok.attrs {
				if n := string(a.name); n == "xmlns" || strings.HasPrefix(n, "xmlns:") {
					continue
				}
				attrs = append(attrs, local(string(a.name))+"="+nl(string(decode(a.value))))
			}
			slices.Sort(attrs)
			out = append(out, "<"+local(string(tok.name))+" "+strings.Join(attrs, " ")+">")
			if tok.empty {
				out = append(out, "</"+local(string(tok.name))+">")
			}
		case kEnd:
			out = append(out, "</"+local(string(tok.name))+">")
		case kText:
			if tok.cdata {
				out = append(out, "T"+nl(string(tok.text)))
			} else {
				out = append(out, "T"+nl(string(decode(tok.text))))
			}
		}
	}
}

// refAll is scanAll by encoding/xml's strict Decoder.Token, the reference.
func refAll(src string) ([]string, error) {
	d := xml.NewDecoder(strings.NewReader(src))
	d.Strict = true
	var out []string
	for {
		t, err := d.Token()
		if err == io.EOF {
			return merge(out), nil
		}
		if err != nil {
			return merge(out), err
		}
		switch t := t.(type) {
		case xml.StartElement:
			var attrs []string
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
					continue
				}
				attrs = append(attrs, a.Name.Local+"="+nl(a.Value))
			}
			slices.Sort(attrs)
			out = append(out, "<"+t.Name.Local+" "+strings.Join(attrs, " ")+">")
		case xml.EndElement:
			out = append(out, "</"+t.Name.Local+">")
		case xml.CharData:
			out = append(out, "T"+nl(string(t)))
		}
	}
}

// merge joins adjacent text and drops text that is only white space
// outside the root, which the two report differently.
func merge(toks []string) []string {
	var out []string
	depth := 0
	for _, t := range toks {
		switch {
		case strings.HasPrefix(t, "T"):
			if depth == 0 {
				continue
			}
			if n := len(out); n > 0 && strings.HasPrefix(out[n-1], "T") {
				out[n-1] += t[1:]
				continue
			}
		case strings.HasPrefix(t, "</"):
			depth--
		default:
			depth++
		}
		out = append(out, t)
	}
	return out
}

func local(name string) string {
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		return name[i+1:]
	}
	return name
}

func nl(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n") }

var wellFormed = []string{
	`<a/>`,
	`<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' id='x1'>` +
		`<message type="chat" from="a@b" to="f1@sink.localhost" id="i"><body>hi &amp; bye &lt;3 &#x1F426; &#65;</body><origin-id xmlns="urn:xmpp:sid:0" id="i"/></message>` +
		`<iq type='get' id='p"1' from='x' to='y'><ping xmlns='urn:xmpp:ping'/></iq> </stream:stream>`,
	`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<r a = "1"	b='2'
 c="&quot;'>"><![CDATA[<not> & markup]]>text]]<x/></r>`,
	`<r><é ü="ß">unicode ✓</é></r>`,
	`<r>a > b</r >`,
	"<r>\r\nline\rbreak</r>",
}

var malformed = []string{
	`<a>`,                              // never closed
	`<a></b>`,                          // mismatched
	`<a><b></a></b>`,                   // crossed
	`<a b="1" b="2"/>`,                 // duplicate attribute
	`<a b=1/>`,                         // unquoted
	`<a b/>`,                           // no value
	`<a b="1"c="2"/>`,                  // no space between attributes
	`<a b="<"/>`,                       // < in a value
	`<a>&nbsp;</a>`,                    // unknown entity
	`<a>& </a>`,                        // bare &
	`<a>&#0;</a>`,                      // not a character
	`<a>&#xD800;</a>`,                  // surrogate
	"<a>\x01</a>",                      // control character
	"<a>\xff</a>",                      // not UTF-8
	`<a>x]]>y</a>`,                     // ]]> in text
	`<a><!-- c --></a>`,                // comment: not in a stream
	`<a><?pi x?></a>`,                  // processing instruction: not in a stream
	`<!DOCTYPE a><a/>`,                 // DTD: not in a stream
	`<a/><b/>`,                         // two roots
	`<a/>x`,                            // text after the root
	`x<a/>`,                            // text before the root
	`<1a/>`,                            // bad name
	`<a><?xml version="1.0"?></a>`,     // declaration not at the start
	`<a></a `,                          // end tag cut
	`<a b="1></a>`,                     // value not closed
	`<a>< b/></a>`,                     // space before the name
	`<a></>`,                           // end tag without a name
	`<message><body>x</body></message`, // cut
}

// lenientStd are the malformed inputs encoding/xml accepts.
var lenientStd = map[string]bool{`<a b="1"c="2"/>`: true, `<a>&#xD800;</a>`: true}

func TestScannerAcceptsWellFormed(t *testing.T) {
	for _, src := range wellFormed {
		want, err := refAll(src)
		if err != nil {
			t.Fatalf("reference rejects %q: %v", src, err)
		}
		for _, size := range []int{1, 7, 4096} {
			for name, r := range map[string]io.Reader{"whole": strings.NewReader(src), "bytewise": iotest.OneByteReader(strings.NewReader(src))} {
				got, err := scanAll(r, size)
				if err != nil {
					t.Errorf("%q (%s, buffer %d): %v", src, name, size, err)
					continue
				}
				if !slices.Equal(got, want) {
					t.Errorf("%q (%s, buffer %d):\n got %q\nwant %q", src, name, size, got, want)
				}
			}
		}
	}
}

func TestScannerRejectsMalformed(t *testing.T) {
	for _, src := range malformed {
		for _, size := range []int{1, 4096} {
			_, err := scanAll(iotest.OneByteReader(strings.NewReader(src)), size)
			var se *syntaxError
			if !errors.As(err, &se) {
				t.Errorf("%q (buffer %d): err %v, want a syntax error", src, size, err)
			}
		}
		// The encoding/xml receiver refuses it too, but for two faults
		// encoding/xml lets through.
		if _, err := stdAll(src); err == nil && !lenientStd[src] {
			t.Errorf("%q: the encoding/xml tokenizer accepts it", src)
		}
	}
}

func stdAll(src string) (int, error) {
	x := newStdTokenizer(strings.NewReader(src), nil)
	n := 0
	for {
		tok, err := x.next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if tok.kind == kStart {
			n++
		}
	}
}

// TestScannerTooLong: a token larger than the scanner's bound is an error,
// not a buffer that grows without end.
func TestScannerTooLong(t *testing.T) {
	src := "<a>" + strings.Repeat("x", 5000) + "</a>"
	s := newScanner(strings.NewReader(src), 64, 1024)
	for {
		_, err := s.next()
		if err == nil {
			continue
		}
		var se *syntaxError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), "longer than") {
			t.Fatalf("err %v, want a token too long", err)
		}
		return
	}
}

// FuzzScannerAgainstEncodingXML: whatever the scanner accepts, encoding/xml
// accepts as the same tokens, read whole or a byte at a time.
func FuzzScannerAgainstEncodingXML(f *testing.F) {
	for _, s := range append(slices.Clone(wellFormed), malformed...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		got, err := scanAll(strings.NewReader(src), 8)
		bytewise, err2 := scanAll(iotest.OneByteReader(strings.NewReader(src)), 1)
		if (err == nil) != (err2 == nil) || err == nil && !slices.Equal(got, bytewise) {
			t.Fatalf("%q: whole %q %v; bytewise %q %v", src, got, err, bytewise, err2)
		}
		if err != nil {
			return
		}
		want, rerr := refAll(src)
		if rerr != nil {
			t.Fatalf("%q: the scanner accepts it, encoding/xml says %v", src, rerr)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%q:\n got %q\nwant %q", src, got, want)
		}
	})
}

func BenchmarkScanner(b *testing.B) {
	for _, parser := range []string{"scan", "encoding/xml"} {
		b.Run(strings.ReplaceAll(parser, "/", "-"), func(b *testing.B) {
			var res checkResult
			var err error
			for b.Loop() {
				if res, err = selfCheck(parser, "minimal", 10_000); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*res.N), "ns/stanza")
		})
	}
}
