package web_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"starling.dev/starling/internal/testenv/stack"
)

// liveWithin is how soon a post or a deletion made through the API must
// show on an open page.
const liveWithin = 2 * time.Second

// chromium finds Debian's chromium, or fails naming the install step.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: run scripts/deps.sh (it installs Debian's chromium and chromium-driver), " +
		"or apt-get install -y chromium chromium-driver")
	return ""
}

// artifactPath is where the screenshot is kept: $STARLING_ARTIFACTS, or
// test-artifacts/ at the repository's root.
func artifactPath(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("STARLING_ARTIFACTS")
	if dir == "" {
		root, err := filepath.Abs("..")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
			t.Fatalf("no go.mod at %s: run the test from the web package", root)
		}
		dir = filepath.Join(root, "test-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

// browser starts a headless Chromium with a phone-sized window and
// collects what its pages write to the console.
type browser struct {
	ctx     context.Context
	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(412, 915),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancelAlloc)
	t.Cleanup(cancel) // runs first: closes the tab, then the browser
	b := &browser{ctx: ctx}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(412, 915, chromedp.EmulateMobile)); err != nil {
		t.Fatalf("starting %s: %v", chromium(t), err)
	}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return b
}

// do runs actions, failing the test on an error.
func (b *browser) do(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// within runs actions that must finish within d.
func (b *browser) within(t *testing.T, d time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: not within %s: %v", what, d, err)
	}
	return time.Since(start)
}

// eval evaluates a JavaScript expression on the page.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// problems are the console's errors and exceptions so far.
func (b *browser) problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.console {
		if m.Type == chromedp.ConsoleError || m.IsException() {
			out = append(out, m.String()+" ("+m.URL+")")
		}
	}
	return out
}

// TestBrowserProfile opens an author's page in a real browser, on the whole
// stack: the page renders on a phone-sized screen, a post made through the
// API appears without a reload, markup in it stays text, a deletion makes
// it vanish, the start page lists the latest posts, the page reads without
// JavaScript, and the console stays free of errors (a violation of the
// Content-Security-Policy would be one). A screenshot is kept.
func TestBrowserProfile(t *testing.T) {
	b := startBrowser(t)
	st := stack.StartStack(t, stack.Options{LogLevel: "warn"})
	token := st.CreateUser(t, "alice", "Alice <Liddell>")
	bio := "Down the <i>rabbit</i> hole & back"
	if _, err := st.Call(http.MethodPatch, "/v1/users/alice", token, map[string]string{"bio": bio}, nil); err != nil {
		t.Fatal(err)
	}
	first := st.Post(t, token, "Hello from the looking-glass")

	b.do(t, "open the author's page", chromedp.Navigate(st.API+"/u/alice"), chromedp.WaitVisible("#p-"+first.ID))
	if h1 := eval[string](t, b, `document.querySelector('h1').textContent`); h1 != "Alice <Liddell>" {
		t.Errorf("heading %q", h1)
	}
	if got := eval[string](t, b, `document.querySelector('.bio').textContent`); got != bio {
		t.Errorf("bio %q", got)
	}
	if href := eval[string](t, b, `document.querySelector('a.button').getAttribute('href')`); href != "xmpp:"+st.AuthorJID("alice")+"?roster" {
		t.Errorf("roster link %q", href)
	}
	if !eval[bool](t, b, `(() => { const q = document.querySelector('img.qr'); return q.complete && q.naturalWidth > 0 && q.alt.length > 0 })()`) {
		t.Error("the QR code did not load, or has no alt text")
	}
	if !eval[bool](t, b, `document.documentElement.scrollWidth <= window.innerWidth`) {
		t.Errorf("the page is wider than the screen: %d > %d",
			eval[int](t, b, `document.documentElement.scrollWidth`), eval[int](t, b, `window.innerWidth`))
	}
	b.within(t, 5*time.Second, "live updates connect", chromedp.WaitVisible("#live-status.on"))

	markup := `<img src=x onerror="document.title='pwned'"><b>not bold</b> & <script>window.pwned=1</script>`
	p := st.Post(t, token, markup)
	took := b.within(t, liveWithin, "the new post appears", chromedp.WaitVisible("#p-"+p.ID))
	t.Logf("a post appeared on the open page %s after the API accepted it", took.Round(time.Millisecond))
	if got := eval[string](t, b, `document.querySelector('#p-`+p.ID+` .text').textContent`); got != markup {
		t.Errorf("the post shows %q, want the markup as text", got)
	}
	if n := eval[int](t, b, `document.querySelectorAll('#posts img, #posts b, #posts script').length`); n != 0 {
		t.Errorf("markup in the post became %d elements", n)
	}
	if eval[bool](t, b, `typeof window.pwned !== 'undefined' || document.title === 'pwned'`) {
		t.Error("script in the post ran")
	}
	if top := eval[string](t, b, `document.querySelector('#posts li').id`); top != "p-"+p.ID {
		t.Errorf("the newest post is %s, not at the top", top)
	}
	shot, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := artifactPath(t, "web-profile.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the author's page: %s", path)

	if code, err := st.Call(http.MethodDelete, "/v1/statuses/"+p.ID, token, nil, nil); err != nil || code != http.StatusNoContent {
		t.Fatalf("delete: %d %v", code, err)
	}
	took = b.within(t, liveWithin, "the deleted post vanishes", chromedp.WaitNotPresent("#p-"+p.ID))
	t.Logf("a deleted post vanished %s after the API accepted the deletion", took.Round(time.Millisecond))
	if !eval[bool](t, b, `document.getElementById('p-`+first.ID+`') !== null`) {
		t.Error("the other post went too")
	}

	b.do(t, "open the start page", chromedp.Navigate(st.API+"/"), chromedp.WaitVisible("#p-"+first.ID))
	if eval[bool](t, b, `document.getElementById('p-`+p.ID+`') !== null`) {
		t.Error("the start page lists the deleted post")
	}

	if problems := b.problems(); len(problems) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(problems, "\n"))
	}

	// Without JavaScript the page is whole; only live updates are missing.
	if _, err := chromedp.Call(b.ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatal(err)
	}
	b.do(t, "open the page without JavaScript", chromedp.Navigate(st.API+"/u/alice"), chromedp.WaitVisible("#p-"+first.ID))
	status, err := chromedp.Run(b.ctx, chromedp.Text("#live-status"))
	if err != nil || status != "Reload the page for new posts." {
		t.Errorf("without JavaScript the live status reads %q (%v)", status, err)
	}
}
