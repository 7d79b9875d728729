// Package webtest drives the dashboard in headless Chromium for tests: it finds the browser,
// opens a tab whose console exceptions and Content-Security-Policy violations fail the test, and
// waits, evaluates, signs in and takes screenshots with failure messages that show the page.
package webtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Chromium returns the browser to drive: $CHROMIUM, or Debian's chromium at /usr/bin/chromium.
// Without one the test is skipped, or fails when the environment variable CI is set
// (scripts/test-deps.sh installs it).
func Chromium(t testing.TB) string {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("no Chromium for the browser tests at %s (%v): run scripts/test-deps.sh (Debian's chromium) or set CHROMIUM", path, err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// Browser is one tab of a headless Chromium of its own.
type Browser struct {
	t   testing.TB
	ctx context.Context

	mu       sync.Mutex
	problems []string // exceptions, CSP violations, console.error calls
}

// Open starts Chromium (headless, no sandbox, no GPU, no background networking) with a
// 1280×900 window, for as long as ctx and the test last. When the test ends, anything the page
// threw, any CSP violation and any console.error fails it. Failed requests do not: the app shows
// API errors itself, and tests cause some on purpose.
func Open(t testing.TB, ctx context.Context) *Browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], // headless, --disable-background-networking
		chromedp.ExecPath(Chromium(t)), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 900))
	actx, cancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancel)
	tab, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(tab); err != nil { // starts the browser
		t.Fatalf("starting Chromium: %v", err)
	}
	b := &Browser{t: t, ctx: tab}
	messages := chromedp.Console(tab)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Source == "security" || m.Type == chromedp.ConsoleError && m.Source != "network" {
				b.mu.Lock()
				b.problems = append(b.problems, fmt.Sprintf("%s [%s] %s (%s:%d)", m.Type, m.Source, m.Text, m.URL, m.Line+1))
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(b.checkConsole) // runs before the cancels above
	return b
}

func (b *Browser) checkConsole() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("browser console: %s", p)
	}
}

// Do runs steps, failing the test with what it was doing and the page's text.
func (b *Browser) Do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\n%s", what, err, b.Page())
	}
}

// Wait polls a JavaScript expression in the page until it is truthy, for at most 20 s.
func (b *Browser) Wait(what, expr string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		b.t.Fatalf("waiting for %s: %v\n%s", what, err, b.Page())
	}
}

// Eval evaluates a JavaScript expression in the page (awaiting a promise) into a T.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// Page is the route and the text on screen, for failure messages.
func (b *Browser) Page() string {
	text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.hash + "\n" + document.body.innerText`))
	return "page: " + text
}

// SignIn opens the dashboard at url and signs in with token; it returns once the page for the
// route is being shown.
func (b *Browser) SignIn(url, token string) {
	b.t.Helper()
	b.Do("sign in",
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS(`input[name=token]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=token]`), token),
		chromedp.Click(chromedp.CSS(`form.signin button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID(`sign-out`)))
}

// Screenshot saves the whole page as a PNG file.
func (b *Browser) Screenshot(path string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err == nil {
		err = os.MkdirAll(filepath.Dir(path), 0o755)
	}
	if err == nil {
		err = os.WriteFile(path, png, 0o644)
	}
	if err != nil {
		b.t.Errorf("screenshot %s: %v", path, err)
	}
}

// FitsWidth fails the test unless the page is at most as wide as the viewport: nothing
// overflows sideways.
func (b *Browser) FitsWidth(what string) {
	b.t.Helper()
	if w := Eval[[]int](b, `[document.documentElement.scrollWidth, innerWidth]`); w[0] > w[1] {
		b.t.Errorf("%s overflows horizontally: scrollWidth %d > innerWidth %d", what, w[0], w[1])
	}
}
