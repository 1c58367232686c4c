package queue

import (
	"strings"
	"testing"
)

// BenchmarkRedaction measures what the key scan of an /fn request adds to
// each call, for the usual case of nothing to mask (the secret masking of
// a result is measured in hostapi).
//
//	go test -run '^$' -bench Redaction ./queue/
func BenchmarkRedaction(b *testing.B) {
	request := func() *HTTPRequest {
		return &HTTPRequest{
			Method: "POST", Path: "/orders/42",
			Query: map[string]string{"name": "Ada", "page_size": "20"},
			Headers: map[string]string{
				"accept": "application/json", "content-type": "application/json", "user-agent": "curl/8.5.0",
				"x_forwarded_for": "10.0.0.1", "cookie": "theme=dark; session_id=abc123", "host": "localhost:8080",
			},
			Body: []byte(`{"order_id": 42, "line_items": [{"sku": "a_1", "qty": 2}], "` + strings.Repeat("note_", 200) + `": true}`),
		}
	}
	b.Run("keys", func(b *testing.B) {
		reqs := make([]*HTTPRequest, b.N)
		for i := range reqs {
			reqs[i] = request()
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range reqs {
			reqs[i].redactKeys()
		}
	})
}
