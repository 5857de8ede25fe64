package starling_test

import (
	"bufio"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"starling.dev/starling/internal/rediskeys"
)

const (
	module       = "starling.dev/starling"
	architecture = "docs/ARCHITECTURE.md"
)

// docTable returns the rows of the first Markdown table under the heading
// (a line starting with "## "+heading) of docs/ARCHITECTURE.md, each row as
// its trimmed cells without backquotes. The header and rule rows are left out.
func docTable(t *testing.T, heading string) [][]string {
	t.Helper()
	f, err := os.Open(architecture)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows [][]string
	in, seen := false, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			in = strings.TrimPrefix(line, "## ") == heading
		case in && strings.HasPrefix(line, "|"):
			seen++
			if seen <= 2 {
				continue // header and rule
			}
			var cells []string
			for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
				cells = append(cells, strings.TrimSpace(strings.ReplaceAll(c, "`", "")))
			}
			rows = append(rows, cells)
		case in && seen > 0 && strings.TrimSpace(line) == "":
			return rows
		}
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no table under %q", architecture, heading)
	}
	return rows
}

// TestImportDirection checks every package's imports (tests aside) against
// the table "Packages and import direction" of docs/ARCHITECTURE.md: a
// package may import only what its row lists ("any" allows everything), and
// every package of the module has a row (a "/*" row covers a folder).
func TestImportDirection(t *testing.T) {
	allowed := map[string][]string{}
	for _, row := range docTable(t, "Packages and import direction") {
		if len(row) < 3 {
			t.Fatalf("row %q: want package | holds | may import", row)
		}
		var may []string
		for _, p := range strings.Split(row[2], ",") {
			if p = strings.TrimSpace(p); p != "" && p != "—" && p != "nothing" {
				may = append(may, p)
			}
		}
		allowed[row[0]] = may
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := short(fields[0])
		may, ok := rule(allowed, pkg)
		if !ok {
			t.Errorf("package %s has no row in %s", pkg, architecture)
			continue
		}
		if slices.Contains(may, "any") {
			continue
		}
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			if imp := short(imp); !slices.Contains(may, imp) {
				t.Errorf("%s imports %s, which %s does not allow (it allows %v)", pkg, imp, architecture, may)
			}
		}
	}
}

// short names a package of the module the way the docs do: "starling" for
// the root, else its path inside the module.
func short(importPath string) string {
	if importPath == module {
		return "starling"
	}
	return strings.TrimPrefix(importPath, module+"/")
}

// rule finds the row of pkg: its own, or a "dir/*" row of its folder.
func rule(allowed map[string][]string, pkg string) ([]string, bool) {
	if may, ok := allowed[pkg]; ok {
		return may, true
	}
	may, ok := allowed[path.Dir(pkg)+"/*"]
	return may, ok
}

// TestRedisKeyTable checks the table "Redis keys" of docs/ARCHITECTURE.md
// against rediskeys.Families, row by row, and that every family's pattern
// is what the Layout builds.
func TestRedisKeyTable(t *testing.T) {
	rows := docTable(t, "Redis keys")
	if len(rows) != len(rediskeys.Families) {
		t.Errorf("%s lists %d key families, rediskeys.Families %d", architecture, len(rows), len(rediskeys.Families))
	}
	for i, f := range rediskeys.Families {
		if i >= len(rows) {
			break
		}
		want := []string{f.Pattern, f.Type, f.Owner, f.Holds}
		if !slices.Equal(rows[i][:min(4, len(rows[i]))], want) {
			t.Errorf("row %d:\n doc  %q\n code %q", i+1, rows[i], want)
		}
	}
	l := rediskeys.Layout{Prefix: "P:"}
	built := map[string]string{
		"u:{<user>}":             l.User("<user>"),
		"t:<sha256 hex>":         l.Token("<sha256 hex>"),
		"p:{<user>}":             l.Posts("<user>"),
		"l:{<user>}":             l.PostOrder("<user>"),
		"a:<post id>":            l.PostAuthor("<post id>"),
		"i:{<user>}:<key>":       l.Idempotency("<user>", "<key>"),
		"d:{<user>}:<key>":       l.IdempotencyDone("<user>", "<key>"),
		"x:{<user>}:<post id>":   l.Retraction("<user>", "<post id>"),
		"dp:{<user>}:<post id>":  l.DeletedPost("<user>", "<post id>"),
		"j:{<user>}":             l.Links("<user>"),
		"jl:{<jid>}":             l.JIDLinks("<jid>"),
		"tk:{<jid>}":             l.Tracking("<jid>"),
		"k:{<word>}":             l.Trackers("<word>"),
		"f:{<user>}":             l.Followers("<user>"),
		"f:{<user>#<k>}":         strings.Replace(l.FollowerShard("<user>", 7), "#7}", "#<k>}", 1),
		"fp:{<user>}:<post id>":  l.FanoutProgress("<user>", "<post id>"),
		"fs:{<user>}:<post id>":  l.Sending("<user>", "<post id>"),
		"bp:{<user>}:<batch id>": l.BatchProgress("<user>", "<batch id>"),
		"g:<jid>":                l.Following("<jid>"),
		"s:{<jid>}":              l.State("<jid>"),
		"o:{<jid>}":              l.Resources("<jid>"),
		"pg":                     l.ProbeGrants(),
		"pl":                     l.ProbeLease(),
		"cfg":                    l.Settings(),
	}
	for _, f := range rediskeys.Families {
		got, ok := built[f.Pattern]
		if !ok {
			t.Errorf("family %s: no Layout method checked here", f.Pattern)
			continue
		}
		if got != "P:"+f.Pattern {
			t.Errorf("family %s: Layout builds %s", f.Pattern, got)
		}
	}
	// Every key an author, a follower or a tracked word owns carries a
	// hash tag, so Cluster keeps the family's scripts on one slot.
	tagged := regexp.MustCompile(`\{<(user|jid|word)>(#<k>)?\}`)
	for _, f := range rediskeys.Families {
		if strings.Contains(f.Pattern, "{") && !tagged.MatchString(f.Pattern) {
			t.Errorf("family %s: braces that are not a hash tag", f.Pattern)
		}
	}
}
