package ui_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/picloud/picloud/internal/platformtest"
)

// attrURLRx finds the URLs a page loads or links to: src, href and the
// viewer's spec-url.
var attrURLRx = regexp.MustCompile(`(?i)\b(src|href|spec-url|server-url)\s*=\s*"([^"]*)"`)

// TestDocsOffline: /docs, served by the API with keys on, references
// nothing outside the server, every file it references is served, and the
// viewer's script is served gzipped (as embedded) and unpacked alike.
func TestDocsOffline(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options{Auth: true})
	fetch := func(path string, header ...string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, p.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		// No transparent decompression: the test looks at what is sent.
		res, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, body
	}

	res, page := fetch("/docs")
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs = %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	csp := res.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q: want scripts and everything else from the server only", csp)
	}
	if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`).FindAll(page, -1); len(m) > 0 {
		t.Errorf("/docs names other hosts: %q", m)
	}
	refs := attrURLRx.FindAllSubmatch(page, -1)
	var script, spec string
	for _, m := range refs {
		u := string(m[2])
		if !strings.HasPrefix(u, "/") || strings.HasPrefix(u, "//") {
			t.Errorf("%s=%q: not a path on this server", m[1], u)
			continue
		}
		r, body := fetch(u)
		if r.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s (referenced by /docs) = %d, %d bytes", u, r.StatusCode, len(body))
		}
		switch strings.ToLower(string(m[1])) {
		case "src":
			script = u
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
				t.Errorf("GET %s: Content-Type %q, want text/javascript", u, ct)
			}
		case "spec-url":
			spec = u
			if !bytes.Contains(body, []byte(`"openapi"`)) || !bytes.Contains(body, []byte(`/v1/functions`)) {
				t.Errorf("GET %s: not the API's OpenAPI document", u)
			}
		}
	}
	if script == "" || spec == "" {
		t.Fatalf("/docs loads no viewer script (%q) or no OpenAPI document (%q)", script, spec)
	}

	// The viewer: as stored (gzip) to a browser, unpacked otherwise, the
	// same script either way.
	zr, zbody := fetch(script, "Accept-Encoding", "gzip, deflate, br")
	pr, plain := fetch(script)
	if zr.Header.Get("Content-Encoding") != "gzip" || pr.Header.Get("Content-Encoding") != "" {
		t.Fatalf("Content-Encoding %q with gzip accepted, %q without", zr.Header.Get("Content-Encoding"), pr.Header.Get("Content-Encoding"))
	}
	gz, err := gzip.NewReader(bytes.NewReader(zbody))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(unzipped, plain) || !bytes.Contains(plain, []byte("rapi-doc")) {
		t.Errorf("the gzipped (%d bytes, %d unpacked) and plain (%d bytes) viewer differ, or it is not RapiDoc", len(zbody), len(unzipped), len(plain))
	}
	if len(zbody) > 300<<10 {
		t.Errorf("the viewer sends %d bytes gzipped; it was 218 KB", len(zbody))
	}
	if zr.Header.Get("ETag") == pr.Header.Get("ETag") {
		t.Error("the gzipped and plain viewer share an ETag")
	}
}
