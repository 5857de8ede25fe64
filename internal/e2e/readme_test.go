package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"starling.dev/starling/httpapi"
	"starling.dev/starling/internal/app"
	"starling.dev/starling/internal/testenv"
)

// The README's tour is tested here, as a person would run it: every ```sh
// block marked with a line "<!-- tested: SECTION NAME -->" is run by bash
// (-euo pipefail), in document order, in a folder that looks like a checkout
// after `make run` (run/secrets.env, bin/starlingctl), against the whole
// system on real servers. Variables and functions a block defines are handed
// to the blocks after it, as they would be in one terminal. Each block has a
// check below of what its comments promise.

const readmePath = "../../README.md"

// tourBlock is one tested code block of the README.
type tourBlock struct {
	section, name string
	code          string
	line          int // of the marker, 1-based
}

var tourMarkerRE = regexp.MustCompile(`^<!-- tested: (\S+) (\S+) -->$`)

// readmeTourBlocks returns the README's tested blocks, in order. Every sh
// block of the sections holding tested blocks must be marked, so that no
// untested command slips into the tour.
func readmeTourBlocks(t *testing.T, readme string) []tourBlock {
	t.Helper()
	lines := strings.Split(readme, "\n")
	var blocks []tourBlock
	section := ""
	tested := map[string]bool{}  // sections with tested blocks
	unmarked := map[string]int{} // section -> line of an unmarked sh block
	for i := 0; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "## ") {
			section = strings.TrimPrefix(lines[i], "## ")
			continue
		}
		m := tourMarkerRE.FindStringSubmatch(lines[i])
		if m == nil {
			if lines[i] == "```sh" && unmarked[section] == 0 {
				unmarked[section] = i + 1
			}
			continue
		}
		if i+1 >= len(lines) || lines[i+1] != "```sh" {
			t.Fatalf("README.md:%d: the marker %q must be followed by a ```sh line", i+1, lines[i])
		}
		b := tourBlock{section: m[1], name: m[2], line: i + 1}
		end := slices.Index(lines[i+2:], "```")
		if end < 0 {
			t.Fatalf("README.md:%d: the block is not closed", i+2)
		}
		b.code = strings.Join(lines[i+2:i+2+end], "\n")
		blocks = append(blocks, b)
		tested[section] = true
		i += 2 + end
	}
	for sec, line := range unmarked {
		if tested[sec] {
			t.Errorf("README.md:%d: a ```sh block in %q without a <!-- tested: ... --> marker", line, sec)
		}
	}
	return blocks
}

// tourPrelude and tourEpilogue wrap each block: the prelude loads what the
// earlier blocks defined, the epilogue saves every variable and function
// the shell did not start with.
const tourPrelude = `__vars=" $(compgen -v | tr '\n' ' ') "
if [[ -s $TOUR_STATE ]]; then source "$TOUR_STATE"; fi
# ---- the README's block ----
`

const tourEpilogue = `
# ---- end of the README's block ----
{
	for __v in $(compgen -v); do
		case "$__vars" in *" $__v "*) continue ;; esac
		case "$__v" in __* | BASH* | FUNCNAME | PIPESTATUS | _) continue ;; esac
		declare -p "$__v"
	done
	declare -f
} >"$TOUR_STATE.new"
mv -f "$TOUR_STATE.new" "$TOUR_STATE"
`

// tourShell runs blocks in dir, carrying their state.
type tourShell struct {
	dir, state string
	env        []string
}

func (sh *tourShell) run(t *testing.T, b tourBlock) (stdout, stderr string) {
	t.Helper()
	script := filepath.Join(sh.dir, ".tour-"+b.name+".sh")
	if err := os.WriteFile(script, []byte(tourPrelude+b.code+"\n"+tourEpilogue), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", script)
	cmd.Dir = sh.dir
	cmd.Env = sh.env
	cmd.WaitDelay = 5 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	t.Logf("README.md:%d (%s %s)\n$ %s\n--- stdout:\n%s--- stderr:\n%s", b.line, b.section, b.name,
		strings.ReplaceAll(b.code, "\n", "\n$ "), out.String(), errOut.String())
	if err != nil {
		t.Fatalf("README.md:%d: the %s block failed: %v", b.line, b.name, err)
	}
	return out.String(), errOut.String()
}

// variable returns a shell variable the blocks have set so far.
func (sh *tourShell) variable(t *testing.T, name string) string {
	t.Helper()
	cmd := exec.Command("bash", "-c", `source "$TOUR_STATE"; printf %s "${!1-}"`, "bash", name)
	cmd.Env = sh.env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reading $%s from the tour's state: %v", name, err)
	}
	return string(out)
}

// decodeLine decodes the JSON document on a line of out that starts with "{".
func decodeLine(t *testing.T, out string, v any) {
	t.Helper()
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "{") {
			if err := json.Unmarshal([]byte(line), v); err != nil {
				t.Fatalf("decode %q: %v", line, err)
			}
			return
		}
	}
	t.Fatalf("no JSON document in the output %q", out)
}

// buildStarlingctl builds the admin CLI where the README's block expects it.
func buildStarlingctl(t *testing.T, out string) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(goTool, "build", "-o", out, "starling.dev/starling/cmd/starlingctl")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/starlingctl: %v\n%s", err, b)
	}
}

func TestReadmeAPITour(t *testing.T) {
	raw, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeTourBlocks(t, string(raw))

	s := startStack(t, testenv.StartProsody(t))
	// The README speaks of make run's names: the Jabber account bob@localhost
	// and the component microblog.localhost. The test servers use the same.
	if s.srv.Host != "localhost" || s.srv.ComponentDomain != "microblog.localhost" {
		t.Fatalf("the test's XMPP server is %s with component %s; the README assumes localhost and microblog.localhost",
			s.srv.Host, s.srv.ComponentDomain)
	}
	service := s.srv.ComponentDomain

	// A folder like a checkout after `make run`: run/secrets.env as make run
	// writes it, alice created, and bob@localhost registered and online.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "run"), 0o700); err != nil {
		t.Fatal(err)
	}
	alice := s.createUser(t, "alice")
	secrets := fmt.Sprintf("# Generated by make run (internal/run) and reused by every 'make run'. Delete to regenerate.\n"+
		"STARLING_ADMIN_TOKEN=%s\nSTARLING_XMPP_SECRET=%s\nDEMO_XMPP_PASSWORD=bob-pw\nALICE_TOKEN=%s\n",
		adminToken, s.srv.Secret, alice)
	if err := os.WriteFile(filepath.Join(dir, "run", "secrets.env"), []byte(secrets), 0o600); err != nil {
		t.Fatal(err)
	}
	buildStarlingctl(t, filepath.Join(dir, "bin", "starlingctl"))
	bob := s.client(t, "bob")

	sh := &tourShell{dir: dir, state: filepath.Join(dir, ".tour-state")}
	sh.env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "LANG=C.UTF-8",
		"TOUR_STATE=" + sh.state,
		"API=" + s.api, // overrides the setup block's default
	}

	const text = "Hello from the API tour"
	var posted status
	checks := map[string]func(t *testing.T, out, errOut string){
		"api-tour/setup": func(t *testing.T, out, _ string) {
			if strings.TrimSpace(out) != `{"status":"ready"}` {
				t.Errorf("readyz: %q", out)
			}
			if got := sh.variable(t, "ADMIN"); got != adminToken {
				t.Errorf("$ADMIN = %q, want the admin token from run/secrets.env", got)
			}
		},
		"api-tour/create-user": func(t *testing.T, out, _ string) {
			var u struct{ Username, JID, Token string }
			decodeLine(t, out, &u)
			if u.Username != "carol" || u.JID != "carol@microblog.localhost" {
				t.Errorf("created %+v", u)
			}
			if tok := sh.variable(t, "CAROL"); tok != u.Token || !regexp.MustCompile(`^stl_[A-Za-z0-9_-]{43}$`).MatchString(tok) {
				t.Errorf("$CAROL = %q, the answer's token %q", tok, u.Token)
			}
		},
		"api-tour/add-follower": func(t *testing.T, out, _ string) {
			var c struct {
				JID   string `json:"jid"`
				Added bool   `json:"added"`
			}
			decodeLine(t, out, &c)
			if c.JID != "bob@localhost" || !c.Added {
				t.Errorf("PUT follower: %+v", c)
			}
		},
		"api-tour/import-followers": func(t *testing.T, out, _ string) {
			var r struct {
				Imported, Already int
				Invalid           []struct {
					Line int
					JID  string
				}
				InvalidCount int `json:"invalid_count"`
			}
			decodeLine(t, out, &r)
			if r.Imported != 2 || r.Already != 1 || r.InvalidCount != 1 || len(r.Invalid) != 1 ||
				r.Invalid[0].Line != 6 || r.Invalid[0].JID != "not a jid" {
				t.Errorf("import: %+v", r)
			}
		},
		"api-tour/post": func(t *testing.T, out, _ string) {
			decodeLine(t, out, &posted)
			if posted.Author != "carol" || posted.Text != text || posted.ID == "" || sh.variable(t, "ID") != posted.ID {
				t.Fatalf("posted %+v, $ID %q", posted, sh.variable(t, "ID"))
			}
			// bob follows carol since the admin's PUT: the post reaches his client.
			expectPost(t, s, bob, posted, text)
		},
		"api-tour/retry": func(t *testing.T, out, _ string) {
			var again status
			decodeLine(t, out, &again)
			if again != posted {
				t.Errorf("the retry answered %+v, want the first answer %+v", again, posted)
			}
			// Nothing was posted twice: once the pipeline is idle, a command's
			// reply is the next message bob gets, with no second delivery before it.
			s.drained(t)
			bob.Send(t, service, "help")
			for {
				m := bob.Next(t, 10*time.Second)
				if m.OriginID == posted.ID {
					t.Fatalf("the retried post was delivered twice: %+v", m)
				}
				if bare(m.From) == service {
					break
				}
				t.Logf("bob got %+v", m)
			}
		},
		"api-tour/profile": func(t *testing.T, out, _ string) {
			var p profile
			decodeLine(t, out, &p)
			if p.Username != "carol" || p.Followers != 3 || p.Posts != 1 {
				t.Errorf("profile %+v, want 3 followers and 1 post", p)
			}
		},
		"api-tour/statuses": func(t *testing.T, out, _ string) {
			var page struct {
				Statuses []status
				Next     string
			}
			decodeLine(t, out, &page)
			if len(page.Statuses) != 1 || page.Statuses[0] != posted || page.Next != "" {
				t.Errorf("statuses %+v, want just %+v", page, posted)
			}
		},
		"api-tour/status": func(t *testing.T, out, _ string) {
			var st status
			decodeLine(t, out, &st)
			if st != posted {
				t.Errorf("status %+v, want %+v", st, posted)
			}
		},
		"api-tour/update-profile": func(t *testing.T, out, _ string) {
			var p struct {
				DisplayName string `json:"display_name"`
				Bio         string `json:"bio"`
			}
			decodeLine(t, out, &p)
			if p.DisplayName != "Carol C." || p.Bio != "Trying Starling" {
				t.Errorf("PATCH answered %+v", p)
			}
		},
		"api-tour/followers": func(t *testing.T, out, _ string) {
			var page struct {
				Followers []string
				Next      string
			}
			decodeLine(t, out, &page)
			slices.Sort(page.Followers)
			want := []string{"bob@localhost", "juliet@example.net", "romeo@example.net"}
			if !slices.Equal(page.Followers, want) || page.Next != "" {
				t.Errorf("followers %+v, want %v", page, want)
			}
		},
		"api-tour/rotate-token": func(t *testing.T, out, _ string) {
			if strings.TrimSpace(out) != "old token: 401" {
				t.Errorf("output %q, want old token: 401", out)
			}
			old, cur := sh.variable(t, "OLD"), sh.variable(t, "CAROL")
			if old == "" || cur == "" || old == cur {
				t.Fatalf("tokens before and after the rotation: %q, %q", old, cur)
			}
			if code := s.call(t, "GET", "/v1/users/carol/followers", cur, nil, nil); code != 200 {
				t.Errorf("the new token: status %d", code)
			}
		},
		"api-tour/problem": func(t *testing.T, out, _ string) {
			head, body, _ := strings.Cut(strings.ReplaceAll(out, "\r\n", "\n"), "\n\n")
			if !strings.HasPrefix(head, "HTTP/1.1 404 ") ||
				!strings.Contains(strings.ToLower(head), "\ncontent-type: application/problem+json") {
				t.Errorf("head %q", head)
			}
			var p struct {
				Type   string
				Status int
				Detail string
			}
			decodeLine(t, body, &p)
			if p.Type != "about:blank" || p.Status != 404 || p.Detail != `no user "nobody"` {
				t.Errorf("problem %+v", p)
			}
		},
		"api-tour/delete-status": func(t *testing.T, out, _ string) {
			if strings.TrimSpace(out) != "status now: 404" {
				t.Errorf("output %q, want status now: 404", out)
			}
			r := bob.Next(t, 15*time.Second)
			if r.Retracts != posted.ID || bare(r.From) != "carol@microblog.localhost" {
				t.Errorf("bob got %+v, want carol's retraction of %s", r, posted.ID)
			}
		},
		"api-tour/delete-user": func(t *testing.T, out, _ string) {
			if out != "" {
				t.Errorf("output %q, want none (204)", out)
			}
			if code := s.call(t, "GET", "/v1/users/carol", "", nil, nil); code != 404 {
				t.Errorf("carol after her deletion: status %d", code)
			}
		},
		"starlingctl/example": func(t *testing.T, out, errOut string) {
			var st status
			decodeLine(t, out, &st)
			if st.Author != "dave" || st.Text != "Hello from starlingctl" {
				t.Errorf("starlingctl post printed %+v", st)
			}
			for _, want := range []string{`{"already":0,"imported":1,"invalid":1}`, "exit status 3", "juliet@example.net"} {
				if !strings.Contains(out, want+"\n") {
					t.Errorf("stdout lacks the line %q", want)
				}
			}
			if !strings.Contains(errOut, `line 2: "not a jid": `) {
				t.Errorf("stderr does not list the invalid line: %q", errOut)
			}
			if code := s.call(t, "GET", "/v1/users/dave", "", nil, nil); code != 404 {
				t.Errorf("dave after users delete: status %d", code)
			}
		},
	}

	ran := map[string]bool{}
	for _, b := range blocks {
		key := b.section + "/" + b.name
		check, ok := checks[key]
		if !ok {
			t.Fatalf("README.md:%d: the block %q has no check in readme_test.go; add one", b.line, key)
		}
		if ran[key] {
			t.Fatalf("README.md:%d: a second block named %q", b.line, key)
		}
		ran[key] = true
		if !t.Run(key, func(t *testing.T) {
			out, errOut := sh.run(t, b)
			check(t, out, errOut)
		}) {
			return // the blocks after it build on this one
		}
	}
	for key := range checks {
		if !ran[key] {
			t.Errorf("README.md has no tested block %q any more", key)
		}
	}
}

// TestReadmeConfigTable checks that the README's configuration table lists
// every variable the two binaries read, with a flag that exists, and none
// they do not read.
func TestReadmeConfigTable(t *testing.T) {
	raw, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	readers := map[string]map[string]bool{"gateway": {}, "api": {}}
	record := func(proc string) app.Env {
		return func(k string) (string, bool) { readers[proc][k] = true; return "", false }
	}
	// Without STARLING_XMPP_DOMAIN both refuse the configuration; every
	// variable has been looked up by then.
	_, _ = app.ParseGateway(nil, record("gateway"))
	_, _ = app.ParseAPI(nil, record("api"))
	parse := map[string]func([]string) error{
		"gateway": func(args []string) error { _, err := app.ParseGateway(args, record("gateway")); return err },
		"api":     func(args []string) error { _, err := app.ParseAPI(args, record("api")); return err },
	}

	_, table, ok := strings.Cut(string(raw), "\n## Configuration\n")
	if !ok {
		t.Fatal("README.md has no ## Configuration section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	rowRE := regexp.MustCompile("^\\| `(STARLING_[A-Z0-9_]+)` \\| ([^|]+) \\| (both|gateway|api) \\| ([^|]+) \\|")
	listed := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(table))
	for sc.Scan() {
		m := rowRE.FindStringSubmatch(sc.Text())
		if m == nil {
			if strings.HasPrefix(sc.Text(), "| `STARLING_") {
				t.Errorf("README.md: cannot read the row %q", sc.Text())
			}
			continue
		}
		name, flagCol, usedBy := m[1], strings.TrimSpace(m[2]), m[3]
		listed[name] = true
		procs := []string{usedBy}
		if usedBy == "both" {
			procs = []string{"gateway", "api"}
		}
		for _, proc := range procs {
			if !readers[proc][name] {
				t.Errorf("README.md lists %s as used by %s, which does not read it", name, proc)
			}
			flagName, isFlag := strings.CutPrefix(strings.Trim(flagCol, "`"), "-")
			if !isFlag {
				continue // a secret: environment only
			}
			err := parse[proc]([]string{"-" + flagName + "=1"})
			if err != nil && strings.Contains(err.Error(), "flag provided but not defined") {
				t.Errorf("README.md: %s has no flag -%s", proc, flagName)
			}
		}
	}
	for proc, vars := range readers {
		for name := range vars {
			if strings.HasPrefix(name, "STARLING_") && !listed[name] {
				t.Errorf("README.md's configuration table lacks %s, which the %s reads", name, proc)
			}
		}
	}
}

// TestReadmeAPIGuideRoutes checks that docs/API.md, the human guide, names
// every operation of httpapi/openapi.yaml.
func TestReadmeAPIGuideRoutes(t *testing.T) {
	guide, err := os.ReadFile("../../docs/API.md")
	if err != nil {
		t.Fatal(err)
	}
	pathRE := regexp.MustCompile(`^  (/\S*):$`)
	methodRE := regexp.MustCompile(`^    (get|put|post|patch|delete):$`)
	path, n := "", 0
	sc := bufio.NewScanner(bytes.NewReader(httpapi.OpenAPI))
	for sc.Scan() {
		if m := pathRE.FindStringSubmatch(sc.Text()); m != nil {
			path = m[1]
			continue
		}
		if sc.Text() == "components:" {
			break
		}
		if m := methodRE.FindStringSubmatch(sc.Text()); m != nil && path != "" {
			n++
			op := "`" + strings.ToUpper(m[1]) + " " + path
			if !bytes.Contains(guide, []byte(op+"`")) && !bytes.Contains(guide, []byte(op+"?")) {
				t.Errorf("docs/API.md does not describe %s`", op)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 15 {
		t.Fatalf("found only %d operations in openapi.yaml; the test's reading of it is out of date", n)
	}
	if !bytes.Contains(guide, []byte("httpapi/openapi.yaml")) {
		t.Error("docs/API.md does not point to httpapi/openapi.yaml")
	}
}
