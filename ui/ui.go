// Package ui is PiCloud's web dashboard: static files embedded in the
// binary, served under /ui/ by the api role. The pages use only the public
// REST API, like the SDKs; nothing here reaches the database.
//
// The third-party libraries in static/vendor are pinned in package.json and
// copied there by `go generate ./ui` (npm ci, then vendor.mjs). They are
// committed, so building and running PiCloud needs no Node.
package ui

//go:generate npm ci --no-audit --no-fund
//go:generate npm run vendor

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

// Prefix is where the dashboard is mounted.
const Prefix = "/ui/"

//go:embed static
var static embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	gzipped     []byte // nil when compression does not pay
	etag        string
	contentType string
}

// assets are read and compressed once, on the first request: the files
// never change while the binary runs.
var assets = sync.OnceValue(func() map[string]*asset {
	out := map[string]*asset{}
	err := fs.WalkDir(static, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(name)
		if err != nil {
			return err
		}
		// A file stored gzipped (a large vendored library, to keep the
		// binary small) is served under its name without .gz: as stored
		// to clients that accept gzip, unpacked here for the rest.
		var stored []byte
		if base, ok := strings.CutSuffix(name, ".gz"); ok {
			stored = body
			zr, err := gzip.NewReader(bytes.NewReader(stored))
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			name = base
		}
		sum := sha256.Sum256(body)
		a := &asset{body: body, gzipped: stored, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, contentType: contentType(name)}
		if stored == nil && compressible(a.contentType) && len(body) > 1024 {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			_, _ = zw.Write(body)
			_ = zw.Close()
			if buf.Len() < len(body)*9/10 {
				a.gzipped = buf.Bytes()
			}
		}
		out[strings.TrimPrefix(name, "static/")] = a
		return nil
	})
	if err != nil {
		panic("ui: read embedded files: " + err.Error()) // the embed is fixed at build time
	}
	return out
})

func contentType(name string) string {
	switch path.Ext(name) {
	case ".js", ".mjs":
		// mime's table depends on the host's /etc/mime.types; module
		// scripts are refused under nosniff unless this is exact.
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".html":
		return "text/html; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".txt", "":
		return "text/plain; charset=utf-8"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

func compressible(contentType string) bool {
	return strings.HasPrefix(contentType, "text/") || contentType == "image/svg+xml" || contentType == "application/json"
}

// securityHeaders keep the dashboard, which holds an admin key, from being
// framed or from loading anything from elsewhere.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
		"img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options": "nosniff",
	"X-Frame-Options":        "DENY",
	// The events endpoints take the key in the URL; no page may leak it
	// onwards.
	"Referrer-Policy": "no-referrer",
}

// DocsPath is where the API reference is served.
const DocsPath = "/docs"

// DocsHandler serves the API reference (static/docs.html): RapiDoc,
// embedded like the dashboard's libraries, reading the server's own
// /openapi.json. Nothing is loaded from elsewhere, so the page works
// without internet access, and the dashboard's CSP holds for it too
// (huma's built-in page loaded its viewer from a CDN: blank offline).
func DocsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Path = Prefix + "docs.html"
		serve(w, r2)
	})
}

// Handler serves the dashboard. Mount it at Prefix. Paths without a file
// extension are the app's own routes (/ui/functions/hello) and get
// index.html, so that links into the dashboard can be bookmarked.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the dashboard's files are read-only", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(path.Clean(r.URL.Path), strings.TrimSuffix(Prefix, "/"))
	name = strings.TrimPrefix(name, "/")
	a, ok := assets()[name]
	if !ok {
		if path.Ext(name) != "" {
			http.NotFound(w, r)
			return
		}
		a = assets()["index.html"]
	}
	h := w.Header()
	for k, v := range securityHeaders {
		h.Set(k, v)
	}
	h.Set("Content-Type", a.contentType)
	// Revalidate every time: the ETag makes that a 304, and a new binary's
	// files are seen at once without versioned names.
	h.Set("Cache-Control", "no-cache")
	h.Add("Vary", "Accept-Encoding")
	body, etag := a.body, a.etag
	if a.gzipped != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		// Each encoding is its own representation, with its own strong tag.
		body, etag = a.gzipped, strings.TrimSuffix(a.etag, `"`)+`-gz"`
	}
	h.Set("ETag", etag)
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, etag) {
		h.Del("Content-Encoding")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// acceptsGzip reads an Accept-Encoding header: gzip (or *) listed without
// q=0.
func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		coding = strings.TrimSpace(coding)
		if !strings.EqualFold(coding, "gzip") && coding != "*" {
			continue
		}
		for param := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(param), "=")
			if strings.EqualFold(k, "q") {
				if q, err := strconv.ParseFloat(v, 64); err == nil && q == 0 {
					return false
				}
			}
		}
		return true
	}
	return false
}
