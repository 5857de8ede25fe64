package httpapi

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"starling.dev/starling"
)

func TestValidateText(t *testing.T) {
	cases := []struct {
		name, text string
		max        int
		err        string // "" means valid
	}{
		{"plain", "hello", 500, ""},
		{"tab newline carriage return", "a\tb\nc\rd", 500, ""},
		{"edge of BMP and astral", "\u20ac\ud7ff\ue000\ufffd\U00010000\U0010ffff", 500, ""},
		{"NUL", "ab\x00", 500, "text contains U+0000 at character 3, which XML cannot carry"},
		{"U+0001", "abcd\x01", 500, "text contains U+0001 at character 5, which XML cannot carry"},
		{"vertical tab", "\v", 500, "text contains U+000B at character 1"},
		{"form feed", "x\f", 500, "text contains U+000C at character 2"},
		{"U+001F", "\x1f", 500, "U+001F at character 1"},
		{"U+FFFE", "é\ufffe", 500, "text contains U+FFFE at character 2"},
		{"U+FFFF", "\uffff", 500, "U+FFFF at character 1"},
		{"illegal after multi-byte", "😀😀\x02", 500, "U+0002 at character 3"},
		{"stray continuation byte", "ab\x80", 500, "text is not valid UTF-8: byte 0x80 at character 3"},
		{"truncated sequence", "é\xe2\x82", 500, "byte 0xE2 at character 2"},
		{"overlong encoding", "\xc0\xaf", 500, "byte 0xC0 at character 1"},
		{"byte 0xFF", "ok\xff", 500, "byte 0xFF at character 3"},
		{"encoded surrogate", "\xed\xa0\x80", 500, "byte 0xED at character 1"},
		{"empty", "", 500, "empty or only whitespace"},
		{"spaces", "   ", 500, "empty or only whitespace"},
		{"mixed whitespace", " \t\r\n\u00a0\u2003\u3000", 500, "empty or only whitespace"},
		{"500 multi-byte", strings.Repeat("é", 499) + "😀", 500, ""},
		{"501 multi-byte", strings.Repeat("é", 500) + "😀", 500, "text has 501 characters; the limit is 500"},
		{"500 four-byte", strings.Repeat("😀", 500), 500, ""},
		{"501 four-byte", strings.Repeat("😀", 501), 500, "501 characters"},
		{"combining marks count", strings.Repeat("e\u0301", 3), 5, "6 characters; the limit is 5"},
		{"illegal wins over length", strings.Repeat("a", 600) + "\x01", 500, "U+0001 at character 601"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := starling.CheckPostText(tc.text, tc.max)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error = %v, want one containing %q", err, tc.err)
			}
		})
	}
}

// TestPostTextJSON covers what encoding/json alone would hide: invalid
// UTF-8 and unpaired surrogate escapes, which it turns into U+FFFD.
func TestPostTextJSON(t *testing.T) {
	cases := []struct {
		name, json string
		want       string // decoded text when err is ""
		err        string
	}{
		{"plain", `"hello"`, "hello", ""},
		{"escapes", `"a\"b\\c\/d\n\u00e9"`, "a\"b\\c/d\né", ""},
		{"surrogate pair", `"\ud83d\ude00!"`, "😀!", ""},
		{"literal U+FFFD", `"\ufffd�"`, "\ufffd\ufffd", ""},
		{"escaped backslash before u", `"\\ud800"`, `\ud800`, ""},
		{"null", `null`, "", ""},
		{"lone high surrogate", `"ab\ud83d"`, "", "unpaired surrogate U+D83D at character 3"},
		{"high then non-surrogate", `"\ud83d\u0041"`, "", "unpaired surrogate U+D83D at character 1"},
		{"lone low surrogate", `"x\uDE00"`, "", "unpaired surrogate U+DE00 at character 2"},
		{"raw invalid byte after escapes", "\"\\n\\u00e9\xff\"", "", "byte 0xFF at character 3"},
		{"raw encoded surrogate", "\"\xed\xa0\x80\"", "", "byte 0xED at character 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got postText
			err := json.Unmarshal([]byte(tc.json), &got)
			switch {
			case tc.err == "" && (err != nil || string(got) != tc.want):
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error = %v, want one containing %q", err, tc.err)
			}
		})
	}
}

// FuzzPostText checks that whatever JSON arrives, a decoded text is valid
// UTF-8 and validation neither panics nor miscounts.
func FuzzPostText(f *testing.F) {
	for _, seed := range []string{`"hi"`, `"\ud83d"`, "\"\xff\"", `"\ud83d\ude00"`, `"\\u"`, `"a\u0001"`, `7`, `null`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var text postText
		if err := json.Unmarshal(data, &text); err != nil {
			return
		}
		if !utf8.ValidString(string(text)) {
			t.Fatalf("decoded invalid UTF-8 %q from %q", text, data)
		}
		err := starling.CheckPostText(string(text), 500)
		if err == nil && utf8.RuneCountInString(string(text)) > 500 {
			t.Fatalf("accepted %d code points", utf8.RuneCountInString(string(text)))
		}
	})
}
