package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// Exit codes, which scripts may rely on.
const (
	exitOK      = 0 // done
	exitFailed  = 1 // the API answered an error, or could not be reached
	exitUsage   = 2 // wrong command line
	exitInvalid = 3 // followers import: done, but some lines were invalid
)

const usage = `usage: starlingctl [--url URL] [--token TOKEN] COMMAND ...

Commands:
  users create NAME [--display-name NAME]   create a user (admin); prints the answer, with the token, as JSON
  users token NAME                          rotate NAME's token (admin or owner); prints the new token
  users delete NAME                         delete a user with their followers and posts (admin)
  post [--token TOKEN] TEXT...              post as the owner of the token; prints the status as JSON
  followers import NAME FILE|-              stream JIDs, one per line, to NAME's followers (admin);
                                            progress on stderr, summary as JSON on stdout
  followers export NAME                     print NAME's followers, one JID per line (admin or owner)
  jids add NAME JID [--token TOKEN]         ask for a code that links JID to NAME (the owner's token);
                                            prints {"jid","code","expires_at"}: send "verify CODE"
                                            from that JID to the service JID
  jids list NAME                            NAME's linked JIDs, one a line: JID, verified or code,
                                            when verified or when the code expires (admin or owner)
  jids rm NAME JID                          unlink JID from NAME (admin or owner)

Options:
  --url URL      the API ($STARLINGCTL_URL, default http://127.0.0.1:8080)
  --token TOKEN  bearer token ($STARLING_ADMIN_TOKEN); post and jids add need the user's token

Exit codes: 0 done; 1 the API answered an error or could not be reached;
2 usage error; 3 import done but some lines were invalid (listed on stderr).
`

// errUsage marks a wrong command line.
var errUsage = errors.New("usage")

// ctl is one invocation.
type ctl struct {
	api    *client
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// progressEvery is how often the import reports progress.
	progressEvery progressClock
}

// run executes the command line and returns the exit code.
func run(ctx context.Context, args []string, env func(string) (string, bool), stdin io.Reader, stdout, stderr io.Writer) int {
	return runWith(ctx, args, env, stdin, stdout, stderr, defaultProgressClock)
}

func runWith(ctx context.Context, args []string, env func(string) (string, bool), stdin io.Reader, stdout, stderr io.Writer, clock progressClock) int {
	fs := flag.NewFlagSet("starlingctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	url := envOr(env, "STARLINGCTL_URL", "http://127.0.0.1:8080")
	token, _ := env("STARLING_ADMIN_TOKEN")
	fs.StringVar(&url, "url", url, "")
	fs.StringVar(&token, "token", token, "")
	// Global options come before the command; each command parses its own.
	err := fs.Parse(args)
	rest := fs.Args()
	if err != nil || len(rest) == 0 || rest[0] == "help" {
		fmt.Fprint(stderr, usage)
		if err != nil || len(rest) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c := &ctl{api: newClient(url, token), stdin: stdin, stdout: stdout, stderr: stderr, progressEvery: clock}
	err = c.dispatch(ctx, rest)
	var apiErr *apiError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "starlingctl: %v\n\n%s", err, usage)
		return exitUsage
	case errors.Is(err, errSomeInvalid):
		return exitInvalid
	case errors.As(err, &apiErr):
		fmt.Fprintf(stderr, "starlingctl: %v\n", apiErr)
		return exitFailed
	default:
		fmt.Fprintf(stderr, "starlingctl: %v\n", err)
		return exitFailed
	}
}

func (c *ctl) dispatch(ctx context.Context, args []string) error {
	switch strings.Join(args[:min(2, len(args))], " ") {
	case "users create":
		return c.createUser(ctx, args[2:])
	case "users token":
		name, err := oneArg(args[2:], "users token NAME")
		if err != nil {
			return err
		}
		var tok struct{ Token string }
		if err := c.api.do(ctx, "POST", "/v1/users/"+pathEscape(name)+"/token", nil, "", &tok); err != nil {
			return err
		}
		_, err = fmt.Fprintln(c.stdout, tok.Token)
		return err
	case "users delete":
		name, err := oneArg(args[2:], "users delete NAME")
		if err != nil {
			return err
		}
		return c.api.do(ctx, "DELETE", "/v1/users/"+pathEscape(name), nil, "", nil)
	case "followers import":
		if len(args) != 4 {
			return fmt.Errorf("%w: followers import NAME FILE|-", errUsage)
		}
		return c.importFollowers(ctx, args[2], args[3])
	case "followers export":
		name, err := oneArg(args[2:], "followers export NAME")
		if err != nil {
			return err
		}
		return c.exportFollowers(ctx, name)
	}
	if args[0] == "post" {
		return c.post(ctx, args[1:])
	}
	if args[0] == "jids" && len(args) >= 2 {
		return c.jids(ctx, args[1], args[2:])
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, strings.Join(args, " "))
}

func (c *ctl) createUser(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("users create", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	display := fs.String("display-name", "", "")
	rest, err := parseInterspersed(fs, args)
	if err != nil || len(rest) != 1 {
		return fmt.Errorf("%w: users create NAME [--display-name NAME]", errUsage)
	}
	body, _ := json.Marshal(map[string]string{"username": rest[0], "display_name": *display})
	return c.printJSON(ctx, "POST", "/v1/users", body)
}

// post posts TEXT... as the owner of the token (--token here or before the
// command).
func (c *ctl) post(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("post", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	token := fs.String("token", c.api.token, "")
	rest, err := parseInterspersed(fs, args)
	if err != nil || len(rest) == 0 {
		return fmt.Errorf("%w: post [--token TOKEN] TEXT (one or more words)", errUsage)
	}
	c.api.token = *token
	body, _ := json.Marshal(map[string]string{"text": strings.Join(rest, " ")})
	// One key for every attempt: a retry after a 503 or a lost answer
	// repeats the post instead of posting it twice.
	var key [16]byte
	_, _ = rand.Read(key[:])
	header := http.Header{"Idempotency-Key": {hex.EncodeToString(key[:])}}
	var out json.RawMessage
	if err := c.api.doWith(ctx, "POST", "/v1/statuses", body, "application/json", header, &out); err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.stdout, string(out))
	return err
}

// printJSON sends a JSON request and prints the answer on one line.
func (c *ctl) printJSON(ctx context.Context, method, path string, body []byte) error {
	var out json.RawMessage
	if err := c.api.do(ctx, method, path, body, "application/json", &out); err != nil {
		return err
	}
	_, err := fmt.Fprintln(c.stdout, string(out))
	return err
}

// parseInterspersed parses flags that may come before, between or after
// the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return rest, nil
		}
		if args[0] == "--" {
			return append(rest, args[1:]...), nil
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
}

func oneArg(args []string, form string) (string, error) {
	if len(args) != 1 {
		return "", fmt.Errorf("%w: %s", errUsage, form)
	}
	return args[0], nil
}

func envOr(env func(string) (string, bool), name, def string) string {
	if v, ok := env(name); ok && v != "" {
		return v
	}
	return def
}

// openInput opens FILE, or standard input for "-". size is -1 when unknown.
func (c *ctl) openInput(name string) (io.ReadCloser, int64, error) {
	if name == "-" {
		return io.NopCloser(c.stdin), -1, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return f, -1, nil
	}
	return f, st.Size(), nil
}
