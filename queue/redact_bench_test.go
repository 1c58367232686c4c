package queue

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/picloud/picloud/executor"
)

// BenchmarkRedaction measures what redaction adds to each invocation: the
// key scan of an /fn request (run for every call) and the secret masking of
// a result (run for every call of a function with secrets), both for the
// usual case of nothing to mask.
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
	b.Run("secrets", func(b *testing.B) {
		secrets := map[string]string{"API_TOKEN": "sk-live-0123456789abcdef", "DB_PASSWORD": `p"w\d<é>`}
		stored, _ := json.Marshal(secrets)
		var cache redactorCache
		logs := []executor.LogEntry{{Level: "info", Message: "order 42 placed"}, {Level: "info", Message: "charged", Fields: []byte(`{"amount":12.5,"currency":"EUR"}`)}}
		b.ReportAllocs()
		for b.Loop() {
			res := executor.Result{Value: []byte(`{"ok":true,"id":42}`), Logs: append([]executor.LogEntry(nil), logs...)}
			cache.get(stored, secrets).result(&res, false)
		}
	})
}
