package ui_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/picloud/picloud/internal/platformtest"
)

// overflowJS lists the visible elements that reach past the viewport's
// left or right edge without being inside a horizontal scroll container
// (an ancestor with overflow-x auto or scroll): on a phone those are cut
// off (by an ancestor's overflow: hidden, which is no excuse), or make the
// whole page scroll sideways.
const overflowJS = `(() => {
	const vw = document.documentElement.clientWidth;
	const scrolls = (el) => {
		for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
			const o = getComputedStyle(a).overflowX;
			if (o === "auto" || o === "scroll") return true;
		}
		return false;
	};
	const out = [];
	// CodeMirror's internals overflow its box on purpose (a scroller
	// that hides the native scroll bars past the edge, an off-screen
	// input); the .CodeMirror box itself is checked.
	for (const el of document.body.querySelectorAll("*:not(.CodeMirror *)")) {
		const r = el.getBoundingClientRect();
		if (r.width === 0 || r.height === 0) continue;
		const s = getComputedStyle(el);
		if (s.visibility === "hidden" || s.position === "fixed") continue;
		if ((r.right > vw + 1 || r.left < -1) && !scrolls(el)) {
			const name = el.tagName.toLowerCase() + (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\s+/).join(".") : "");
			out.push(name + " [" + Math.round(r.left) + ", " + Math.round(r.right) + "]");
		}
	}
	const page = document.documentElement.scrollWidth;
	if (page > vw + 1) out.unshift("the page itself: " + page + " px wide in a " + vw + " px viewport");
	return JSON.stringify(out.slice(0, 12));
})()`

// titleBoxJS returns the page title's box and its text colour.
const titleBoxJS = `(() => {
	const h = document.querySelector(".page-title h1, .page-header h1, main h1");
	if (!h) return "";
	const r = h.getBoundingClientRect();
	return JSON.stringify({x: r.left, y: r.top, w: r.width, h: r.height, color: getComputedStyle(h).color, text: h.textContent.trim()});
})()`

// luminance is WCAG 2's relative luminance of an sRGB colour.
func luminance(c color.Color) float64 {
	r, g, b, _ := c.RGBA()
	lin := func(v uint32) float64 {
		s := float64(v) / 0xffff
		if s <= 0.04045 {
			return s / 12.92
		}
		return math.Pow((s+0.055)/1.055, 2.4)
	}
	return 0.2126*lin(r) + 0.7152*lin(g) + 0.0722*lin(b)
}

func contrast(a, b color.Color) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

func parseRGB(t *testing.T, s string) color.Color {
	t.Helper()
	var r, g, b uint8
	if _, err := fmt.Sscanf(strings.ReplaceAll(s, " ", ""), "rgb(%d,%d,%d)", &r, &g, &b); err != nil {
		t.Fatalf("colour %q: %v", s, err)
	}
	return color.RGBA{r, g, b, 255}
}

// dominant is the most frequent colour of an image: behind a line of
// text, its background.
func dominant(img image.Image) color.Color {
	counts := map[color.RGBA]int{}
	var best color.RGBA
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			c := color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 255}
			counts[c]++
			if counts[c] > counts[best] {
				best = c
			}
		}
	}
	return best
}

// TestDashboardNarrow opens every page of the dashboard in a phone-sized
// viewport (390×844, an iPhone 12 to 15) and checks that nothing is cut
// off or widens the page (tables scroll inside their cards), and that the
// page title is readable against what is actually painted behind it.
func TestDashboardNarrow(t *testing.T) {
	chromium(t)
	p := platformtest.Start(t, platformtest.Options{})
	deploy(t, p, "a-function-with-a-rather-long-name", helloV2, `"timeout_ms": 5000`)
	var lastID string
	for range 3 {
		res, err := http.Get(p.URL + "/fn/a-function-with-a-rather-long-name?name=Ada")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		lastID = res.Header.Get("X-Invocation-Id")
	}
	b := startBrowser(t, artifactsDir(t))
	problems := watchConsole(t, b.ctx, "narrow")
	const width, height = 390, 844
	if _, err := chromedp.Call(b.ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
		Width: width, Height: height, DeviceScaleFactor: 1, Mobile: true,
	}); err != nil {
		t.Fatal(err)
	}

	pages := []struct{ path, ready string }{
		{"/ui/", `document.querySelector(".page-title h1") !== null`},
		{"/ui/functions", `document.querySelector('[data-table="functions"] tbody tr') !== null`},
		{"/ui/functions/a-function-with-a-rather-long-name", `document.querySelector('[data-action="invoke"]') !== null`},
		{"/ui/invocations", `document.querySelector('[data-table="invocations"] tbody tr') !== null`},
		{"/ui/invocations/" + lastID, `document.querySelector('[data-status="succeeded"]') !== null`},
		{"/ui/schedules", `document.querySelector(".page-title h1") !== null`},
		{"/ui/keys", `document.querySelector(".page-title h1") !== null`},
	}
	for i, pg := range pages {
		b.do("open "+pg.path, chromedp.Navigate(p.URL+pg.path))
		b.waitFor("see "+pg.path, pg.ready)
		b.shot(fmt.Sprintf("40-narrow-%d", i))

		var offenders []string
		if err := json.Unmarshal([]byte(b.eval("measure "+pg.path, overflowJS)), &offenders); err != nil {
			t.Fatal(err)
		}
		for _, o := range offenders {
			t.Errorf("%s at %d px: %s reaches past the viewport outside a scroll container", pg.path, width, o)
		}

		var box struct {
			X, Y, W, H  float64
			Color, Text string
		}
		raw := b.eval("find the title of "+pg.path, titleBoxJS)
		if raw == "" {
			t.Errorf("%s: no page title", pg.path)
			continue
		}
		if err := json.Unmarshal([]byte(raw), &box); err != nil {
			t.Fatal(err)
		}
		if box.X < 0 || box.X+box.W > width || box.W == 0 {
			t.Errorf("%s: title %q at x %.0f to %.0f, outside the %d px viewport", pg.path, box.Text, box.X, box.X+box.W, width)
			continue
		}
		shot, err := chromedp.Call(b.ctx, page.CaptureScreenshot, page.CaptureScreenshotParams{
			Format: page.CaptureScreenshotFormatPng,
			Clip:   &page.Viewport{X: box.X, Y: box.Y, Width: box.W, Height: box.H, Scale: 1},
		})
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(shot.Data))
		if err != nil {
			t.Fatal(err)
		}
		bg, fg := dominant(img), parseRGB(t, box.Color)
		// WCAG AA for normal text; the title is large, but the bug this
		// guards against measured about 1.0.
		if c := contrast(bg, fg); c < 4.5 {
			t.Errorf("%s: title %q in %s on a painted background of %v: contrast %.2f, want at least 4.5", pg.path, box.Text, box.Color, bg, c)
		}
	}
	for _, m := range problems() {
		t.Errorf("browser console: %s", m)
	}
}
