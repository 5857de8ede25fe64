package dialback

import (
	"errors"
	"strings"
	"testing"
)

// TestKeyMatchesProsody checks Key against a key computed by Prosody 0.12's
// own mod_dialback formula (util.hashes: hmac_sha256(sha256(secret, hex),
// "receiving originating id", hex)) and by openssl, for the same inputs.
func TestKeyMatchesProsody(t *testing.T) {
	const want = "00ed48b18e7c47cdb6285adfe44d1b892db9e96fe6fbf925059ee74c80f3270a"
	if got := Key("s3cret", "microblog.test", "localhost", "abc123"); got != want {
		t.Fatalf("Key = %s, want %s", got, want)
	}
	if !ValidKey("s3cret", "microblog.test", "localhost", "abc123", want) {
		t.Fatal("ValidKey refuses the key Key gave")
	}
	for name, k := range map[string][5]string{
		"secret":      {"other", "microblog.test", "localhost", "abc123", want},
		"receiving":   {"s3cret", "localhost", "microblog.test", "abc123", want},
		"originating": {"s3cret", "microblog.test", "example.org", "abc123", want},
		"stream":      {"s3cret", "microblog.test", "localhost", "abc124", want},
		"key":         {"s3cret", "microblog.test", "localhost", "abc123", strings.ToUpper(want)},
		"empty key":   {"s3cret", "microblog.test", "localhost", "abc123", ""},
	} {
		if ValidKey(k[0], k[1], k[2], k[3], k[4]) {
			t.Errorf("%s changed, yet the key is valid", name)
		}
	}
}

func TestParse(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want Element
		err  error
	}{
		{
			name: "result request (Prosody)",
			in:   `<db:result xmlns:db="jabber:server:dialback" from="localhost" to="microblog.test">0123abcd</db:result>`,
			want: Element{Kind: Result, From: "localhost", To: "microblog.test", Key: "0123abcd"},
		},
		{
			name: "verify answer",
			in:   `<verify xmlns="jabber:server:dialback" from="a.test" to="b.test" id="s1" type="valid"/>`,
			want: Element{Kind: Verify, From: "a.test", To: "b.test", ID: "s1", Type: Valid},
		},
		{
			name: "error answer with condition",
			in: `<db:result xmlns:db="jabber:server:dialback" from="a.test" to="b.test" type="error">` +
				`<error type="cancel"><item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">no</text></error></db:result>`,
			want: Element{Kind: Result, From: "a.test", To: "b.test", Type: Error, Condition: "item-not-found"},
		},
		{
			name: "key with spaces around",
			in:   "<db:verify xmlns:db='jabber:server:dialback' from='a.test' to='b.test' id='x'>\n  k3y \n</db:verify>",
			want: Element{Kind: Verify, From: "a.test", To: "b.test", ID: "x", Key: "k3y"},
		},
		{name: "request without key", in: `<db:result xmlns:db="jabber:server:dialback" from="a.test" to="b.test"/>`, err: ErrMalformed},
		{name: "verify without id", in: `<db:verify xmlns:db="jabber:server:dialback" from="a.test" to="b.test">k</db:verify>`, err: ErrMalformed},
		{name: "no from", in: `<db:result xmlns:db="jabber:server:dialback" to="b.test">k</db:result>`, err: ErrMalformed},
		{name: "from is a JID", in: `<db:result xmlns:db="jabber:server:dialback" from="u@a.test" to="b.test">k</db:result>`, err: ErrMalformed},
		{name: "unknown type", in: `<db:result xmlns:db="jabber:server:dialback" from="a.test" to="b.test" type="maybe">k</db:result>`, err: ErrMalformed},
		{name: "key too long", in: `<db:result xmlns:db="jabber:server:dialback" from="a.test" to="b.test">` + strings.Repeat("k", MaxKey+1) + `</db:result>`, err: ErrMalformed},
		{name: "other namespace", in: `<result xmlns="jabber:server" from="a.test" to="b.test">k</result>`, err: ErrNotDialback},
		{name: "other element", in: `<db:other xmlns:db="jabber:server:dialback" from="a.test" to="b.test">k</db:other>`, err: ErrNotDialback},
		{name: "two elements", in: `<verify xmlns="jabber:server:dialback" from="a.test" to="b.test" id="1" type="valid"/><x/>`, err: ErrMalformed},
		{name: "unclosed", in: `<db:result xmlns:db="jabber:server:dialback" from="a.test" to="b.test">k`, err: ErrMalformed},
		{name: "not XML", in: `<<<`, err: ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Parse([]byte(c.in))
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("Parse: err %v, want %v", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got != c.want {
				t.Fatalf("Parse = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestAppendRoundTrip(t *testing.T) {
	for _, e := range []Element{
		{Kind: Result, From: "microblog.test", To: "localhost", Key: Key("s", "localhost", "microblog.test", "id")},
		{Kind: Verify, From: "microblog.test", To: "localhost", ID: `a"b<c>&'`, Type: Invalid, Key: "k"},
		{Kind: Result, From: "a.test", To: "b.test", Type: Error, Condition: "remote-server-not-found"},
	} {
		b := e.Append(nil)
		got, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse(%s): %v", b, err)
		}
		if got != e {
			t.Fatalf("round trip of %s: %+v, want %+v", b, got, e)
		}
	}
}

func TestAppendIsPrefixed(t *testing.T) {
	got := string(Element{Kind: Result, From: "microblog.test", To: "localhost", Key: "k"}.Append(nil))
	want := `<db:result xmlns:db="jabber:server:dialback" from="microblog.test" to="localhost">k</db:result>`
	if got != want {
		t.Fatalf("Append = %s, want %s", got, want)
	}
}

// FuzzParse feeds Parse what a peer might send: it must never panic, and
// whatever it accepts must pass Check and survive Append and Parse again
// unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`<db:result xmlns:db="jabber:server:dialback" from="localhost" to="microblog.test">0123abcd</db:result>`,
		`<verify xmlns="jabber:server:dialback" from="a.test" to="b.test" id="s1" type="valid"/>`,
		`<db:result xmlns:db="jabber:server:dialback" from="a.test" to="b.test" type="error"><error type="cancel"><item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></db:result>`,
		"<db:verify xmlns:db='jabber:server:dialback' from='a.test' to='b.test' id='&#xD;&amp;'>\n k&lt; </db:verify>",
		`<db:result xmlns:db="jabber:server:dialback" from="a.test" to="b.test">k<![CDATA[ x ]]></db:result>`,
		`<db:result xmlns:db="jabber:server:dialback"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := Parse(in)
		if err != nil {
			return
		}
		if err := e.Check(); err != nil {
			t.Fatalf("Parse accepted %q, which fails Check: %v", in, err)
		}
		out := e.Append(nil)
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Append(%+v) = %q, which Parse refuses: %v", e, out, err)
		}
		if again != e {
			t.Fatalf("round trip of %q: %+v, then %+v", in, e, again)
		}
	})
}
