package tracing

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// answer is one scripted reply of a collector.
type answer struct {
	status     int
	retryAfter string
}

// scripted answers each request with the next answer, then 200s.
type scripted struct {
	mu      sync.Mutex
	answers []answer
	times   []time.Time
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	n := len(s.times)
	s.times = append(s.times, time.Now())
	s.mu.Unlock()
	if n >= len(s.answers) {
		w.WriteHeader(http.StatusOK)
		return
	}
	a := s.answers[n]
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	http.Error(w, http.StatusText(a.status), a.status)
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.times)
}

// recordWaits makes e record its waits instead of sleeping.
func recordWaits(e *exporter) *[]time.Duration {
	var waits []time.Duration
	e.wait = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return ctx.Err()
	}
	return &waits
}

func TestExporterRetries(t *testing.T) {
	soon := time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name     string
		answers  []answer
		ok       bool
		requests int
		// waits: the wait before each retry; 0 means "the backoff's",
		// checked against its jittered range.
		waits []time.Duration
		// minWait is a lower bound for an HTTP-date Retry-After, whose
		// exact value depends on the clock.
		minWait time.Duration
	}{
		{"200 at once", nil, true, 1, nil, 0},
		{"503 then 200", []answer{{status: 503}}, true, 2, []time.Duration{0}, 0},
		{"429, 502, 504 then 200", []answer{{status: 429}, {status: 502}, {status: 504}}, true, 4, []time.Duration{0, 0, 0}, 0},
		{"Retry-After seconds", []answer{{status: 503, retryAfter: "2"}}, true, 2, []time.Duration{2 * time.Second}, 0},
		{"Retry-After on 429", []answer{{status: 429, retryAfter: "1"}, {status: 429, retryAfter: "3"}}, true, 3, []time.Duration{time.Second, 3 * time.Second}, 0},
		{"Retry-After HTTP date", []answer{{status: 503, retryAfter: soon}}, true, 2, nil, time.Second},
		{"Retry-After garbage uses backoff", []answer{{status: 503, retryAfter: "soon"}}, true, 2, []time.Duration{0}, 0},
		{"400 not retried", []answer{{status: 400}}, false, 1, nil, 0},
		{"401 not retried", []answer{{status: 401}}, false, 1, nil, 0},
		{"404 not retried", []answer{{status: 404}}, false, 1, nil, 0},
		{"413 not retried", []answer{{status: 413}}, false, 1, nil, 0},
		{"500 not retried", []answer{{status: 500}}, false, 1, nil, 0},
		{"503 then 400 stops", []answer{{status: 503}, {status: 400}}, false, 2, []time.Duration{0}, 0},
	}
	policy := retryPolicy{initial: 100 * time.Millisecond, max: 400 * time.Millisecond}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &scripted{answers: tt.answers}
			srv := httptest.NewServer(s)
			defer srv.Close()
			exp := newExporter(exporterConfig{url: srv.URL, shown: srv.URL, timeout: time.Minute, retry: policy})
			waits := recordWaits(exp)
			err := exp.ExportSpans(context.Background(), tracetest.SpanStubs{{Name: "s"}}.Snapshots())
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want success %v", err, tt.ok)
			}
			if got := s.count(); got != tt.requests {
				t.Errorf("%d requests, want %d", got, tt.requests)
			}
			if tt.minWait > 0 {
				if len(*waits) != 1 || (*waits)[0] < tt.minWait || (*waits)[0] > 3*time.Second {
					t.Errorf("waits %v, want one of %v to 3s", *waits, tt.minWait)
				}
				return
			}
			if len(*waits) != len(tt.waits) {
				t.Fatalf("waits %v, want %d", *waits, len(tt.waits))
			}
			for i, want := range tt.waits {
				got := (*waits)[i]
				if want != 0 {
					if got != want {
						t.Errorf("wait %d = %v, want %v (Retry-After)", i, got, want)
					}
					continue
				}
				base := min(policy.initial<<i, policy.max)
				if got < base/2 || got >= base*3/2 {
					t.Errorf("wait %d = %v, want within [%v, %v)", i, got, base/2, base*3/2)
				}
			}
			if !tt.ok && !strings.Contains(err.Error(), strconv.Itoa(tt.answers[len(tt.answers)-1].status)) {
				t.Errorf("error %q does not name the status", err)
			}
		})
	}
}

// TestExporterBackoff: the waits grow exponentially to the cap, jittered.
func TestExporterBackoff(t *testing.T) {
	p := retryPolicy{initial: 100 * time.Millisecond, max: time.Second}
	distinct := map[time.Duration]bool{}
	for attempt, base := range []time.Duration{100, 200, 400, 800, 1000, 1000, 1000} {
		base *= time.Millisecond
		for range 20 {
			d := p.backoff(attempt)
			distinct[d] = true
			if d < base/2 || d >= base*3/2 {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v)", attempt, d, base/2, base*3/2)
			}
		}
	}
	if d := p.backoff(1000); d < p.max/2 || d >= p.max*3/2 {
		t.Errorf("backoff(1000) = %v: overflowed the cap", d)
	}
	if len(distinct) < 50 {
		t.Errorf("%d distinct waits in 140: no jitter", len(distinct))
	}
}

// TestExporterRetryBounded: retries stop at the export timeout, and a
// Retry-After beyond it ends the export at once instead of sleeping into
// the deadline.
func TestExporterRetryBounded(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter string
		maxElapsed time.Duration
		minReqs    int
	}{
		{"backoff until the timeout", "", 1500 * time.Millisecond, 3},
		{"Retry-After past the timeout", "30", 200 * time.Millisecond, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answers := make([]answer, 1000)
			for i := range answers {
				answers[i] = answer{status: 503, retryAfter: tt.retryAfter}
			}
			s := &scripted{answers: answers}
			srv := httptest.NewServer(s)
			defer srv.Close()
			exp := newExporter(exporterConfig{url: srv.URL, shown: srv.URL, timeout: time.Second,
				retry: retryPolicy{initial: 50 * time.Millisecond, max: 200 * time.Millisecond}})
			start := time.Now()
			err := exp.ExportSpans(context.Background(), tracetest.SpanStubs{{Name: "s"}}.Snapshots())
			elapsed := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), "503") {
				t.Fatalf("err = %v, want the 503", err)
			}
			if elapsed > tt.maxElapsed {
				t.Errorf("took %v, want at most %v", elapsed, tt.maxElapsed)
			}
			if n := s.count(); n < tt.minReqs {
				t.Errorf("%d requests, want at least %d", n, tt.minReqs)
			}
			if tt.retryAfter != "" && s.count() != 1 {
				t.Errorf("%d requests: a Retry-After past the timeout should end the export", s.count())
			}
		})
	}
}

// TestExporterRetriesConnectionErrors: a collector that is not listening
// yet (restarting) is retried; the export lands once it listens.
func TestExporterRetriesConnectionErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens now: connections are refused
	s := &scripted{}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	defer func() { _ = srv.Close() }()
	exp := newExporter(exporterConfig{url: "http://" + addr + "/v1/traces", shown: addr, timeout: time.Minute})
	var waits int
	exp.wait = func(ctx context.Context, _ time.Duration) error {
		waits++
		if waits == 2 { // refused twice; then the collector is back
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			go func() { _ = srv.Serve(l) }()
		}
		return ctx.Err()
	}
	if err := exp.ExportSpans(context.Background(), tracetest.SpanStubs{{Name: "s"}}.Snapshots()); err != nil {
		t.Fatal(err)
	}
	if waits != 2 || s.count() != 1 {
		t.Errorf("%d waits, %d requests served; want 2 and 1", waits, s.count())
	}
}

// pki is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type pki struct {
	dir                           string
	ca                            *x509.CertPool
	caFile, otherCAFile           string
	serverCert                    tls.Certificate
	clientCertFile, clientKeyFile string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{dir: dir, ca: x509.NewCertPool()}
	writePEM := func(name, typ string, der []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(0)
	newCA := func(name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		serial++
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c, k, der
	}
	issue := func(ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		serial++
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	ca, caKey, caDER := newCA("test CA")
	p.ca.AddCert(ca)
	p.caFile = writePEM("ca.pem", "CERTIFICATE", caDER)
	_, _, otherDER := newCA("another CA")
	p.otherCAFile = writePEM("other-ca.pem", "CERTIFICATE", otherDER)

	srvDER, srvKey := issue(ca, caKey, "collector", x509.ExtKeyUsageServerAuth)
	p.serverCert = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}

	cliDER, cliKey := issue(ca, caKey, "picloud", x509.ExtKeyUsageClientAuth)
	p.clientCertFile = writePEM("client.pem", "CERTIFICATE", cliDER)
	keyDER, err := x509.MarshalPKCS8PrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	p.clientKeyFile = writePEM("client-key.pem", "PRIVATE KEY", keyDER)
	return p
}

// TestExporterTLS: the certificate variables (and their TRACES_ variants,
// which win) make the exporter trust a private CA and present a client
// certificate to a collector that requires one.
func TestExporterTLS(t *testing.T) {
	p := newPKI(t)
	var clientNames []string
	var mu sync.Mutex
	newServer := func(mtls bool) *httptest.Server {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			if len(r.TLS.PeerCertificates) > 0 {
				clientNames = append(clientNames, r.TLS.PeerCertificates[0].Subject.CommonName)
			}
			mu.Unlock()
			w.WriteHeader(http.StatusOK)
		}))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.serverCert}, MinVersion: tls.VersionTLS12}
		if mtls {
			srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
			srv.TLS.ClientCAs = p.ca
		}
		srv.StartTLS()
		return srv
	}
	tlsSrv, mtlsSrv := newServer(false), newServer(true)
	defer tlsSrv.Close()
	defer mtlsSrv.Close()
	missing := filepath.Join(p.dir, "missing.pem")
	notPEM := filepath.Join(p.dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		mtls      bool
		env       map[string]string
		configErr string // the variable a configuration error names
		exportErr string // part of the export's error
		client    string // the client certificate the collector saw
	}{
		{"system roots refuse a private CA", false, nil, "", "certificate", ""},
		{"CA", false, map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": p.caFile}, "", "", ""},
		{"traces CA", false, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": p.caFile}, "", "", ""},
		{"traces CA wins", false, map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": p.otherCAFile, "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": p.caFile}, "", "", ""},
		{"wrong CA", false, map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": p.otherCAFile}, "", "certificate", ""},
		{"mTLS", true, map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": p.caFile,
			"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": p.clientCertFile, "OTEL_EXPORTER_OTLP_CLIENT_KEY": p.clientKeyFile}, "", "", "picloud"},
		{"mTLS with traces variants", true, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": p.caFile,
			"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": missing, "OTEL_EXPORTER_OTLP_CLIENT_KEY": missing,
			"OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE": p.clientCertFile, "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY": p.clientKeyFile}, "", "", "picloud"},
		{"mTLS without a client certificate", true, map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": p.caFile}, "", "certificate", ""},
		{"missing CA file", false, map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": missing}, "OTEL_EXPORTER_OTLP_CERTIFICATE", "", ""},
		{"CA file without PEM", false, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": notPEM}, "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "", ""},
		{"client certificate without key", true, map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": p.clientCertFile}, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "", ""},
		{"client key without certificate", true, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY": p.clientKeyFile}, "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "", ""},
		{"key that does not match", true, map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": p.clientCertFile, "OTEL_EXPORTER_OTLP_CLIENT_KEY": p.caFile}, "OTEL_EXPORTER_OTLP_CLIENT_KEY", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tlsSrv
			if tt.mtls {
				srv = mtlsSrv
			}
			env := map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": srv.URL + "/v1/traces"}
			for k, v := range tt.env {
				env[k] = v
			}
			cfg, err := exporterConfigFromEnv(func(k string) string { return env[k] })
			if tt.configErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.configErr) {
					t.Fatalf("config err = %v, want one naming %s", err, tt.configErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// A certificate problem is not retried: it would fail the same
			// way until the timeout.
			cfg.timeout = 5 * time.Second
			exp := newExporter(cfg)
			waits := recordWaits(exp)
			mu.Lock()
			clientNames = nil
			mu.Unlock()
			err = exp.ExportSpans(context.Background(), tracetest.SpanStubs{{Name: "s"}}.Snapshots())
			if tt.exportErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.exportErr) {
					t.Fatalf("export err = %v, want one containing %q", err, tt.exportErr)
				}
				if len(*waits) != 0 {
					t.Errorf("retried a TLS failure %d times", len(*waits))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if tt.client != "" && (len(clientNames) != 1 || clientNames[0] != tt.client) {
				t.Errorf("collector saw client certificates %v, want %s", clientNames, tt.client)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"7", 7 * time.Second},
		{" 7 ", 7 * time.Second},
		{"99999999999999", time.Hour},
		{"Mon, 07 Dec 2026 12:00:30 GMT", 30 * time.Second},
		{"Mon, 07 Dec 2026 11:59:00 GMT", 0},
		{"Monday, 07-Dec-26 12:01:00 GMT", time.Minute},
		{"tomorrow", 0},
		{"1.5", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
