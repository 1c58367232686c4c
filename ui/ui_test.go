package ui_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/internal/dbtest"
	"github.com/picloud/picloud/internal/platformtest"
	"github.com/picloud/picloud/ui"
)

func TestMain(m *testing.M) {
	executor.RunSandboxIfChild() // platformtest's process sandboxes are this binary
	os.Exit(dbtest.Main(m))
}

func get(t *testing.T, h http.Handler, method, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHandlerServesTheApp(t *testing.T) {
	h := ui.Handler()
	for _, path := range []string{"/ui/", "/ui/functions/hello", "/ui/invocations/42"} {
		res := get(t, h, http.MethodGet, path)
		if res.Code != http.StatusOK || !strings.Contains(res.Body.String(), `<div id="app">`) {
			t.Errorf("GET %s = %d, want index.html; body %.200s", path, res.Code, res.Body)
		}
		if ct := res.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
		if csp := res.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
	}
	res := get(t, h, http.MethodGet, "/ui/app.mjs")
	if res.Code != http.StatusOK || res.Header().Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Errorf("GET /ui/app.mjs = %d %q; module scripts need a JavaScript type under nosniff", res.Code, res.Header().Get("Content-Type"))
	}
	if res := get(t, h, http.MethodGet, "/ui/nope.js"); res.Code != http.StatusNotFound {
		t.Errorf("GET /ui/nope.js = %d, want 404: a missing file must not turn into index.html", res.Code)
	}
	if res := get(t, h, http.MethodPost, "/ui/"); res.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /ui/ = %d, want 405", res.Code)
	}
	for _, f := range []string{"vendor/licenses/preact.txt", "vendor/licenses/htm.txt", "vendor/licenses/codemirror.txt"} {
		if res := get(t, h, http.MethodGet, "/ui/"+f); res.Code != http.StatusOK {
			t.Errorf("GET /ui/%s = %d: vendored libraries ship with their licences", f, res.Code)
		}
	}
}

func TestHandlerCachingAndCompression(t *testing.T) {
	h := ui.Handler()
	plain := get(t, h, http.MethodGet, "/ui/vendor/codemirror.min.js")
	zipped := get(t, h, http.MethodGet, "/ui/vendor/codemirror.min.js", "Accept-Encoding", "br, gzip")
	if zipped.Header().Get("Content-Encoding") != "gzip" || zipped.Body.Len() >= plain.Body.Len() {
		t.Fatalf("gzip: Content-Encoding %q, %d bytes against %d plain", zipped.Header().Get("Content-Encoding"), zipped.Body.Len(), plain.Body.Len())
	}
	zr, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(unzipped, plain.Body.Bytes()) {
		t.Fatalf("the gzipped body does not decompress to the file (err %v)", err)
	}
	if res := get(t, h, http.MethodGet, "/ui/vendor/codemirror.min.js", "Accept-Encoding", "gzip;q=0"); res.Header().Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 still got gzip")
	}
	for _, res := range []*httptest.ResponseRecorder{plain, zipped} {
		etag := res.Header().Get("ETag")
		if etag == "" {
			t.Fatal("no ETag")
		}
		enc := res.Header().Get("Content-Encoding")
		again := get(t, h, http.MethodGet, "/ui/vendor/codemirror.min.js", "If-None-Match", etag, "Accept-Encoding", enc)
		if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
			t.Errorf("If-None-Match %s = %d with %d bytes, want an empty 304", etag, again.Code, again.Body.Len())
		}
	}
	if plain.Header().Get("ETag") == zipped.Header().Get("ETag") {
		t.Error("the plain and gzipped representations share an ETag")
	}
}

// TestServedByTheAPI checks the mount in api.Server: /ui/ serves the app
// without a key (it asks for one when the API answers 401), / leads there,
// and other unknown paths keep the API's problem+json 404.
func TestServedByTheAPI(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options{Auth: true})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	fetch := func(method, path string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, p.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	if res := fetch(http.MethodGet, "/"); res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/ui/" {
		t.Errorf("GET / = %d to %q, want a redirect to /ui/", res.StatusCode, res.Header.Get("Location"))
	}
	for _, path := range []string{"/ui/", "/ui/functions/hello", "/ui/app.mjs"} {
		if res := fetch(http.MethodGet, path); res.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", path, res.StatusCode)
		}
	}
	for _, r := range [][2]string{{http.MethodGet, "/nope"}, {http.MethodPost, "/"}} {
		if res := fetch(r[0], r[1]); res.StatusCode != http.StatusNotFound || res.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s = %d %s, want the API's problem+json 404", r[0], r[1], res.StatusCode, res.Header.Get("Content-Type"))
		}
	}
}
