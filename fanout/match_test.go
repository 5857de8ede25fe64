package fanout

import (
	"slices"
	"strings"
	"testing"
)

func TestMatchKeys(t *testing.T) {
	cases := []struct {
		text string
		want []string
	}{
		{"", []string{}},
		{"Go go GO!", []string{"go"}},
		{"I like #Go, and go-lang.", []string{"#go", "and", "go", "i", "lang", "like"}},
		{"C#go is not a tag; ##go is", []string{"#go", "a", "c", "go", "is", "not", "tag"}},
		{"#tag_with_underscore", []string{"#tag_with_underscore", "tag_with_underscore"}},
		{"Straße STRASSE", []string{"strasse"}},
		{"ＧＯ ｇｏ", []string{"go"}},                          // full-width forms (NFKC)
		{"café cafe\u0301", []string{"café"}},              // composed and decomposed é
		{"ΣΊΣΥΦΟΣ σίσυφος", []string{"σίσυφοσ"}},           // final sigma folds like the others
		{"नमस्ते दुनिया", []string{"दुनिया", "नमस्ते"}},    // combining marks stay inside the word
		{"東京タワー is tall", []string{"is", "tall", "東京タワー"}}, // no spaces: one word per run
		{"don't @bob e-mail a@b.org https://x.org/go?q=1", []string{"1", "a", "b", "bob", "don", "e", "go", "https", "mail", "org", "q", "t", "x"}},
		{"\U0001F600go\U0001F600", []string{"go"}}, // emoji separate words
		{strings.Repeat("a", MaxTrackWordChars) + " " + strings.Repeat("b", MaxTrackWordChars+1) + " #" + strings.Repeat("c", MaxTrackWordChars+1),
			[]string{strings.Repeat("a", MaxTrackWordChars)}},
		{"line\nbreak\ttab", []string{"break", "line", "tab"}},
	}
	for _, c := range cases {
		got := MatchKeys(c.text)
		if !slices.Equal(got, c.want) {
			t.Errorf("MatchKeys(%q) = %q, want %q", c.text, got, c.want)
		}
	}
}

func TestTrackKey(t *testing.T) {
	cases := []struct {
		arg, key string
		ok       bool
	}{
		{"go", "go", true},
		{"GO", "go", true},
		{"#Go", "#go", true},
		{"Straße", "strasse", true},
		{"ｇｏ", "go", true},
		{"नमस्ते", "नमस्ते", true},
		{"snake_case", "snake_case", true},
		{"go-lang", "", false},
		{"#", "", false},
		{"##go", "", false},
		{"@bob", "", false},
		{"", "", false},
		{"go!", "", false},
		{strings.Repeat("x", MaxTrackWordChars), strings.Repeat("x", MaxTrackWordChars), true},
		{strings.Repeat("x", MaxTrackWordChars+1), "", false},
	}
	for _, c := range cases {
		key, ok := TrackKey(c.arg)
		if key != c.key || ok != c.ok {
			t.Errorf("TrackKey(%q) = %q, %v; want %q, %v", c.arg, key, ok, c.key, c.ok)
		}
	}
	// What can be tracked is what a post holds.
	for _, word := range []string{"Go", "#Go", "Straße", "ｇｏ", "नमस्ते"} {
		key, _ := TrackKey(word)
		if !slices.Contains(MatchKeys("a post about "+word+"."), key) {
			t.Errorf("tracking %q (%q) does not match a post containing it", word, key)
		}
	}
	if key, _ := TrackKey("#go"); slices.Contains(MatchKeys("plain go"), key) {
		t.Error("#go matches a post with the plain word")
	}
}

func TestMentions(t *testing.T) {
	cases := []struct {
		text string
		want []string
	}{
		{"hi @bob and @Carol, @bob again", []string{"bob", "carol"}},
		{"@alice: first", []string{"alice"}},
		{"mail me at me@bob", nil},           // an address, not a mention
		{"@bob@example.org is remote", nil},  // a JID
		{"@bobé is not bob", nil},            // followed by a letter
		{"(@x_1)", []string{"x_1"}},          // punctuation around
		{"@" + strings.Repeat("a", 33), nil}, // too long for a username
		{"@ @@ @- @", nil},                   // nothing after @
		{"é@bob", nil},                       // after a letter
		{"@" + strings.Repeat("a", 32), []string{strings.Repeat("a", 32)}},
	}
	for _, c := range cases {
		if got := Mentions(c.text); !slices.Equal(got, c.want) {
			t.Errorf("Mentions(%q) = %q, want %q", c.text, got, c.want)
		}
	}
}

// FuzzMatchKeys checks that every key is folded, one word (or a #tag) that
// TrackKey accepts as itself, and that the keys are sorted and distinct.
func FuzzMatchKeys(f *testing.F) {
	for _, s := range []string{"Go #go", "Straße", "a#b ##c", "\xff\xfe", "东京 #タワー"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		keys := MatchKeys(text)
		for i, k := range keys {
			if i > 0 && keys[i-1] >= k {
				t.Fatalf("keys not sorted and distinct: %q", keys)
			}
			if got, ok := TrackKey(k); !ok || got != k {
				t.Fatalf("key %q of %q: TrackKey gives %q, %v", k, text, got, ok)
			}
		}
		_ = Mentions(text)
	})
}
