package hostapi

import (
	"encoding/json"
	"testing"

	"github.com/picloud/picloud/executor"
)

// BenchmarkRedaction measures the secret masking of a result, run for
// every call of a function with secrets, for the usual case of nothing to
// mask.
//
//	go test -run '^$' -bench Redaction ./hostapi/
func BenchmarkRedaction(b *testing.B) {
	b.Run("secrets", func(b *testing.B) {
		secrets := map[string]string{"API_TOKEN": "sk-live-0123456789abcdef", "DB_PASSWORD": `p"w\d<é>`}
		stored, _ := json.Marshal(secrets)
		var cache RedactorCache
		logs := []executor.LogEntry{{Level: "info", Message: "order 42 placed"}, {Level: "info", Message: "charged", Fields: []byte(`{"amount":12.5,"currency":"EUR"}`)}}
		b.ReportAllocs()
		for b.Loop() {
			res := executor.Result{Value: []byte(`{"ok":true,"id":42}`), Logs: append([]executor.LogEntry(nil), logs...)}
			cache.Get(stored, secrets).Result(&res, false)
		}
	})
}
