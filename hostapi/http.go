package hostapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// HTTPConfig bounds outbound HTTP from scripts (http.request).
type HTTPConfig struct {
	// AllowPrivate lets scripts reach loopback, private, link-local and
	// every other special-purpose address (see specialAddr) when a
	// function's allowlist names such a host. Off by default: a script must
	// not reach the platform's own network (SSRF). Tests and private
	// deployments turn it on.
	AllowPrivate bool
	// MaxResponseBytes caps a response body; 0 means 6 MiB.
	MaxResponseBytes int64
	// Timeout caps one request; 0 means 10 s. A request never outlives the
	// invocation's own deadline.
	Timeout time.Duration
}

const (
	defaultHTTPResponseBytes = 6 << 20
	defaultHTTPTimeout       = 10 * time.Second
	maxHTTPRedirects         = 5
)

// HTTPFetcher performs the requests of one invocation, to the hosts its
// function allows.
type HTTPFetcher struct {
	allow  []httpAllowEntry
	config HTTPConfig
	client *http.Client
}

// NewHTTPFetcher returns a fetcher for a function whose allowlist is allow
// (entries checked by CheckHTTPAllowEntry when the function was stored).
func NewHTTPFetcher(allow []string, config HTTPConfig) *HTTPFetcher {
	if config.MaxResponseBytes <= 0 {
		config.MaxResponseBytes = defaultHTTPResponseBytes
	}
	if config.Timeout <= 0 {
		config.Timeout = defaultHTTPTimeout
	}
	f := &HTTPFetcher{config: config}
	for _, a := range allow {
		// Entries were validated when the function was stored; one that
		// no longer parses (stored by an older version) allows nothing.
		if e, err := parseHTTPAllowEntry(a); err == nil {
			f.allow = append(f.allow, e)
		}
	}
	dialer := &net.Dialer{
		Timeout: config.Timeout,
		// The address is checked after DNS resolution, at connect time,
		// on the very address the socket connects to, so a name that
		// resolves to an internal address is refused too, whatever it
		// resolved to when the URL was checked (DNS rebinding).
		Control: func(_, address string, _ syscall.RawConn) error {
			if config.AllowPrivate {
				return nil
			}
			return checkDialAddress(address)
		},
	}
	f.client = &http.Client{
		Transport: &http.Transport{
			DialContext:           dialer.DialContext,
			Proxy:                 nil, // an environment proxy would bypass the checks above
			TLSHandshakeTimeout:   config.Timeout,
			ResponseHeaderTimeout: config.Timeout,
			MaxIdleConns:          4,
			IdleConnTimeout:       30 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxHTTPRedirects {
				return scriptError("more than %d redirects", maxHTTPRedirects)
			}
			return f.allowed(req.URL)
		},
	}
	return f
}

// checkDialAddress refuses to connect to a special-purpose address (see
// specialAddr); address is the "ip:port" the socket is about to connect to.
func checkDialAddress(address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("http.request: dialing %q: %w", address, err)
	}
	if why := specialAddr(ap.Addr()); why != "" {
		return scriptError("%s is not a public address (%s)", ap.Addr(), why)
	}
	return nil
}

// allowed checks a URL against the function's allowlist (see
// parseHTTPAllowEntry): an entry is a host ("api.example.com"), a wildcard
// for its subdomains ("*.example.com") or an IP address ("[2001:db8::1]"),
// and may name a port ("localhost:8080"); without one, any port. An address
// written in the URL is also checked here, before any connection, for a
// clear error; the dialer checks every address again.
func (f *HTTPFetcher) allowed(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return scriptError("scheme %q is not allowed (http or https)", u.Scheme)
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	for _, entry := range f.allow {
		if !entry.matches(host, port) {
			continue
		}
		if a, err := netip.ParseAddr(host); err == nil && !f.config.AllowPrivate {
			if why := specialAddr(a); why != "" {
				return scriptError("%s is not a public address (%s)", a, why)
			}
		}
		return nil
	}
	if len(f.allow) == 0 {
		return scriptError("this function may not make HTTP requests; allow hosts with http_allow in its settings")
	}
	return scriptError("host %q is not in this function's http_allow list", u.Host)
}

type httpRequestArgs struct {
	Method     string            `json:"method"`
	URL        string            `json:"url"`
	Headers    map[string]string `json:"headers"`
	BodyBase64 string            `json:"body_base64"`
	Timeout    float64           `json:"timeout"` // seconds
}

type httpResponseResult struct {
	Status     int               `json:"status"`
	Headers    map[string]string `json:"headers"`
	BodyBase64 string            `json:"body_base64"`
}

// Fetch performs one http.request call: args as the executor passes them,
// the result as the script receives it.
func (f *HTTPFetcher) Fetch(ctx context.Context, args json.RawMessage) (any, error) {
	var a httpRequestArgs
	if err := DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	u, err := url.Parse(a.URL)
	if err != nil {
		return nil, scriptError("bad url: %v", err)
	}
	if err := f.allowed(u); err != nil {
		return nil, err
	}
	body, err := base64.StdEncoding.DecodeString(a.BodyBase64)
	if err != nil {
		return nil, scriptError("bad body: %v", err)
	}
	timeout := f.config.Timeout
	if a.Timeout > 0 {
		timeout = min(timeout, time.Duration(a.Timeout*float64(time.Second)))
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	method := strings.ToUpper(a.Method)
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, scriptError("%v", err)
	}
	for k, v := range a.Headers {
		req.Header.Set(k, v)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "PiCloud")
	}
	res, err := f.client.Do(req)
	if err != nil {
		var he *ScriptError
		if errors.As(err, &he) {
			return nil, he
		}
		if ctx.Err() != nil {
			return nil, scriptError("%s %s: timed out", method, u.Redacted())
		}
		return nil, scriptError("%s %s: %v", method, u.Redacted(), unwrapURLError(err))
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, f.config.MaxResponseBytes+1))
	if err != nil {
		return nil, scriptError("reading the response: %v", err)
	}
	if int64(len(data)) > f.config.MaxResponseBytes {
		return nil, scriptError("response body over %d bytes", f.config.MaxResponseBytes)
	}
	out := httpResponseResult{Status: res.StatusCode, Headers: make(map[string]string, len(res.Header)), BodyBase64: base64.StdEncoding.EncodeToString(data)}
	for k, v := range res.Header {
		out.Headers[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	return out, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return fmt.Errorf("%w", err)
}
