package xmpp

import (
	"slices"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	cases := []struct {
		body string
		verb Verb
		args []string
	}{
		{"help", VerbHelp, nil},
		{"  HELP  ", VerbHelp, nil},
		{"?", VerbHelp, nil},
		{"follow alice", VerbFollow, []string{"alice"}},
		{"Sub @alice", VerbFollow, []string{"@alice"}},
		{"FOLLOW\talice@microblog.example.org\n", VerbFollow, []string{"alice@microblog.example.org"}},
		{"unfollow alice", VerbUnfollow, []string{"alice"}},
		{"unsub alice", VerbUnfollow, []string{"alice"}},
		{"leave alice", VerbUnfollow, []string{"alice"}},
		{"following", VerbFollowing, nil},
		{"get alice", VerbLast, []string{"alice"}},
		{"last", VerbLast, nil},
		{"whois alice", VerbWhois, []string{"alice"}},
		{"on", VerbOn, nil},
		{"stop", VerbOff, nil},
		{"quit", VerbOff, nil},
		{"off", VerbOff, nil},
		{"follow alice bob", VerbFollow, []string{"alice", "bob"}},
		{"frobnicate x", "", []string{"x"}},
		{"", "", nil},
		{"   \n ", "", nil},
		{"follow\u00a0alice", VerbFollow, []string{"alice"}}, // no-break space separates too
	}
	for _, c := range cases {
		t.Run(c.body, func(t *testing.T) {
			got := ParseCommand(c.body)
			if got.Verb != c.verb || !slices.Equal(got.Args, c.args) {
				t.Fatalf("ParseCommand(%q) = %+v, want verb %q args %q", c.body, got, c.verb, c.args)
			}
		})
	}
}

func TestParseUser(t *testing.T) {
	const domain = "microblog.example.org"
	cases := []struct {
		arg, user string
		ok        bool
	}{
		{"alice", "alice", true},
		{"@alice", "alice", true},
		{"ALICE", "alice", true},
		{"alice@microblog.example.org", "alice", true},
		{"@alice@MICROBLOG.example.org", "alice", true},
		{"alice@example.org", "", false},
		{"al ice", "", false},
		{"al-ice", "", false},
		{"", "", false},
		{"@", "", false},
		{"a_b_9", "a_b_9", true},
		{"abcdefghijklmnopqrstuvwxyz0123456", "", false}, // 33 characters
		{"élodie", "", false},
	}
	for _, c := range cases {
		user, ok, reason := ParseUser(c.arg, domain)
		if user != c.user || ok != c.ok {
			t.Errorf("ParseUser(%q) = %q, %v, want %q, %v", c.arg, user, ok, c.user, c.ok)
		}
		if !ok && reason == "" {
			t.Errorf("ParseUser(%q): no reason given", c.arg)
		}
	}
}

// FuzzParseCommand: parsing never panics and a known verb always comes from
// the first word.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"follow alice", "", "HELP", "sub @a@b", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		c := ParseCommand(body)
		if c.Verb != "" && verbs[strings.ToLower(c.Word)] != c.Verb {
			t.Fatalf("verb %q from word %q", c.Verb, c.Word)
		}
		for _, a := range c.Args {
			_, _, _ = ParseUser(a, "d.example")
		}
	})
}

func TestParseCommandRest(t *testing.T) {
	cases := map[string]string{
		"post hello":                   "hello",
		"  P   two\n lines  \n":        "two\n lines",
		"post\tdon't  squeeze  spaces": "don't  squeeze  spaces",
		"post":                         "",
		"\u00a0post\u00a0hi":           "hi",
	}
	for body, want := range cases {
		if got := ParseCommand(body).Rest; got != want {
			t.Errorf("ParseCommand(%q).Rest = %q, want %q", body, got, want)
		}
	}
}
