package executor

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// BenchmarkRunHelloFreshState is BenchmarkRunHello without reuse: a new
// Lua state, and so a new compile, for every invocation. The difference is
// what pooling states and caching compiled chunks saves per call; a test
// (TestIsolation*) shows that reuse leaks nothing between invocations.
func BenchmarkRunHelloFreshState(b *testing.B) {
	fn := exampleFunction(b, "hello")
	req := Request{Trigger: "http", Method: "GET", Path: "/", Query: map[string]string{"name": "bench"}, Headers: map[string]string{"accept": "*/*"}}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	b.ReportAllocs()
	for b.Loop() {
		s := newState(1, logger)
		res, _ := s.execute(context.Background(), time.Now(), fn, req, Limits{}, 0)
		if res.Status != Succeeded {
			b.Fatal(res.Error)
		}
	}
}
