package ui_test

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/picloud/picloud/internal/platformtest"
)

// TestDocsRenderOffline opens /docs in Chromium and checks that the API
// reference renders from the server alone: the viewer shows the API's
// operations, every request went to the server, and the page tried to load
// nothing that its CSP refused (an external font, say).
func TestDocsRenderOffline(t *testing.T) {
	chromium(t)
	p := platformtest.Start(t, platformtest.Options{})
	b := startBrowser(t, artifactsDir(t))
	problems := watchConsole(t, b.ctx, "docs")

	var mu sync.Mutex
	var requested []string
	_ = chromedp.Listen(b.ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			requested = append(requested, e.Request.URL)
			mu.Unlock()
		}
	})
	if _, err := chromedp.Call(b.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.__blocked = []; document.addEventListener("securitypolicyviolation", e => window.__blocked.push(e.blockedURI + " (" + e.violatedDirective + ")"));`,
	}); err != nil {
		t.Fatal(err)
	}

	b.do("open the API reference", chromedp.Navigate(p.URL+"/docs"))
	// RapiDoc renders into its shadow root; the operations' paths appear
	// once it has fetched and parsed /openapi.json.
	b.waitFor("see the operations", `(() => {
		const r = document.querySelector("rapi-doc")?.shadowRoot;
		const text = r ? r.textContent : "";
		return text.includes("/v1/functions/{name}") && text.includes("PiCloud");
	})()`)
	b.shot("30-docs")

	// The reference is live: without servers in the document, RapiDoc
	// sends "try" requests to the page's own origin.
	answered := `(() => {
		const req = document.querySelector("rapi-doc").shadowRoot.querySelector('api-request[method="get"][path="/healthz"]');
		return req.shadowRoot.textContent.includes("200") ? "yes" : "no";
	})()`
	if b.eval("read the try panel", answered) != "no" {
		t.Fatal("the try panel shows a 200 before anything was sent: the check below would prove nothing")
	}
	b.do("try GET /healthz", chromedp.Evaluate[chromedp.Void](`(() => {
		const req = document.querySelector("rapi-doc").shadowRoot.querySelector('api-request[method="get"][path="/healthz"]');
		const btn = [...req.shadowRoot.querySelectorAll("button")].find((b) => b.textContent.trim() === "TRY");
		btn.click();
	})()`))
	b.waitFor("see the answer", answered+` === "yes"`)

	if blocked := b.eval("read CSP violations", `window.__blocked.join("\n")`); blocked != "" {
		t.Errorf("/docs tried to load what its CSP refuses:\n%s", blocked)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(requested) < 3 {
		t.Errorf("requests %q: want at least the page, the viewer and the OpenAPI document", requested)
	}
	if !slices.Contains(requested, p.URL+"/healthz") {
		t.Errorf("TRY on GET /healthz did not request %s/healthz (requests: %q)", p.URL, requested)
	}
	for _, u := range requested {
		if !strings.HasPrefix(u, p.URL+"/") && !strings.HasPrefix(u, "data:") && !strings.HasPrefix(u, "blob:") {
			t.Errorf("/docs requested %s, outside the server", u)
		}
	}
	for _, m := range problems() {
		t.Errorf("browser console: %s", m)
	}
}
