package web

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/memgate/memgate/internal/testlock"
)

// A real headless Chromium over the seeded pages: no console errors, the
// charts are drawn, re-running works signed in and is refused otherwise,
// and screenshots are written for people to look at (bench/out/screenshots).
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	browser := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		t.Skip("no Chromium on PATH: apt-get install chromium (CI installs it)")
	}
	testlock.Gate(t) // a browser starting would disturb a gate measuring in another package
	b := setup(t, true)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1800))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	var mu sync.Mutex
	var consoleErrors []string
	if err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				consoleErrors = append(consoleErrors, fmt.Sprint(e.Args))
			}
		case *runtime.EventExceptionThrown:
			consoleErrors = append(consoleErrors, e.ExceptionDetails.Text)
		}
	}); err != nil {
		t.Fatal(err)
	}

	shots := filepath.Join("..", "..", "bench", "out", "screenshots")
	os.MkdirAll(shots, 0o755)
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name), png, 0o644)
		})
	}
	eval := func(expr string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](expr, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return n
	}
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}

	runURL := fmt.Sprintf("%s/runs/%d", b.srv.URL, b.ids["fail"])
	do(chromedp.Navigate(b.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("table.runs")), shot("list.png"))
	if n := eval(`document.querySelectorAll("table.runs tbody tr").length`); n != 4 {
		t.Errorf("list shows %d rows, want 4", n)
	}
	do(chromedp.Navigate(runURL), chromedp.WaitVisible(chromedp.CSS("svg.chart")), shot("run.png"))
	if n := eval(`document.querySelectorAll("svg.chart polyline.series").length`); n < 3 {
		t.Errorf("%d chart lines drawn on the run page, want heap raw, post-GC and goroutines", n)
	}
	// The chart is really drawn: its lines have a size on the page.
	if n := eval(`Math.round(document.querySelector("svg.chart polyline.series").getBoundingClientRect().width)`); n < 200 {
		t.Errorf("the heap line is %d px wide", n)
	}
	// The sites' lines link to the commit's file on GitHub, as the browser
	// reads the address.
	if n := eval(`[...document.querySelectorAll("a.src")].filter(a => a.href === "https://github.com/acme/orders-service/blob/4f2a9c1e0b7d3a5f6e8c9d0a1b2c3d4e5f6a7b8c/main.go#L" + a.textContent.split(":")[1]).length`); n != 2 {
		t.Errorf("%d source links to the commit's lines, want 2 (heap site, goroutine stack)", n)
	}
	if n := eval(`document.querySelectorAll("#rerun").length`); n != 0 {
		t.Error("a re-run button without signing in")
	}
	do(chromedp.Navigate(b.srv.URL+"/repos/acme/orders-service"), chromedp.WaitVisible(chromedp.CSS("svg.chart")), shot("repo.png"))

	// A pull request's run beside its base: both runs' lines drawn on each
	// overlaid chart, the criteria in two columns, and nothing the
	// repository wrote run as script.
	pairURL := fmt.Sprintf("%s/runs/%d", b.srv.URL, b.seedPair(t))
	do(chromedp.Navigate(pairURL), chromedp.WaitVisible(chromedp.CSS("#against-base svg.chart")), shot("run-pair.png"))
	if n := eval(`Array.from(document.querySelectorAll("#against-base svg.chart")).filter(c => c.querySelectorAll("polyline.series").length == 2).length`); n != 2 {
		t.Errorf("%d overlaid charts with the base's and the head's lines, want 2", n)
	}
	if n := eval(`Math.round(document.querySelector("#against-base svg.chart polyline[data-series='base post-GC heap']").getBoundingClientRect().width)`); n < 200 {
		t.Errorf("the base's heap line is %d px wide", n)
	}
	if n := eval(`document.querySelectorAll("#criteria-pair tbody tr").length`); n < 3 {
		t.Errorf("%d criteria side by side", n)
	}
	if n := eval(`document.querySelectorAll("#against-base script, #against-base img").length`); n != 0 {
		t.Errorf("%d elements made of the repository's text", n)
	}
	if n := eval(`document.querySelectorAll("#accepted").length`); n != 1 {
		t.Error("the acceptance is not shown")
	}

	// On a phone the page must not scroll sideways: wide tables scroll in
	// their own box, and charts shrink to the width.
	do(chromedp.EmulateViewport(390, 844), chromedp.Navigate(runURL), chromedp.WaitVisible(chromedp.CSS("svg.chart")), shot("run-phone.png"))
	if n := eval(`document.documentElement.scrollWidth - document.documentElement.clientWidth`); n > 0 {
		t.Errorf("the run page is %d px wider than a phone", n)
	}
	do(chromedp.Navigate(pairURL), chromedp.WaitVisible(chromedp.CSS("#against-base svg.chart")), shot("run-pair-phone.png"))
	if n := eval(`document.documentElement.scrollWidth - document.documentElement.clientWidth`); n > 0 {
		t.Errorf("the side-by-side page is %d px wider than a phone", n)
	}
	do(chromedp.Navigate(b.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("table.runs")), shot("list-phone.png"))
	if n := eval(`document.documentElement.scrollWidth - document.documentElement.clientWidth`); n > 0 {
		t.Errorf("the list is %d px wider than a phone", n)
	}
	do(chromedp.EmulateViewport(1280, 1800))

	// Without signing in, a forged re-run is refused.
	forged := eval(fmt.Sprintf(`fetch("/runs/%d/rerun", {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "csrf=guess"}).then(r => r.status)`, b.ids["fail"]))
	if forged != 403 || len(b.rerun.calls) != 0 {
		t.Errorf("forged re-run: status %d, re-runs %v", forged, b.rerun.calls)
	}

	// Sign in with the token and re-run.
	do(chromedp.Navigate(b.srv.URL+fmt.Sprintf("/login?next=/runs/%d", b.ids["fail"])),
		chromedp.WaitVisible(chromedp.CSS(`input[name="token"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="token"]`), testToken),
		chromedp.Submit(chromedp.CSS(`form.login`)),
		chromedp.WaitVisible(chromedp.CSS("#rerun")),
		chromedp.Click(chromedp.CSS("#rerun")),
		chromedp.WaitVisible(chromedp.CSS(`#status[data-status="queued"]`)),
		shot("rerun-queued.png"))
	after, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if len(b.rerun.calls) != 1 || !strings.Contains(after, "/runs/") || strings.HasSuffix(after, fmt.Sprintf("/runs/%d", b.ids["fail"])) {
		t.Errorf("re-run went to %q; calls %v", after, b.rerun.calls)
	}
	// Let the live script poll once on the queued page.
	do(chromedp.Sleep(2500 * time.Millisecond))

	mu.Lock()
	defer mu.Unlock()
	if len(consoleErrors) > 0 {
		t.Errorf("console errors: %v", consoleErrors)
	}
	abs, _ := filepath.Abs(shots)
	t.Logf("screenshots in %s", abs)
}
