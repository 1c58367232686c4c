package api_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/picloud/picloud/internal/bench"
	"github.com/picloud/picloud/internal/platformtest"
)

// BenchmarkSyncCall measures a synchronous /fn/hello call next to the
// PostgreSQL operations it is built from, in the same run, so the ratio to
// the floor holds on a noisy machine. Besides ns/op (the mean) it reports
// the median and 99th percentile, which is what a caller feels:
//
//	go test -run '^$' -bench SyncCall -benchtime 2000x ./api/
func BenchmarkSyncCall(b *testing.B) {
	p := platformtest.Start(b, platformtest.Options{Concurrency: 2})
	ctx := context.Background()

	b.Run("floor=select1", func(b *testing.B) { measure(b, bench.SelectOne(ctx, p.Pool)) })

	b.Run("floor=insert_commit", func(b *testing.B) {
		op, err := bench.InsertCommit(ctx, p.Pool)
		if err != nil {
			b.Fatal(err)
		}
		measure(b, op)
	})

	b.Run("floor=notify_to_listener", func(b *testing.B) {
		op, closeListener, err := bench.NotifyToListener(ctx, p.Pool)
		if err != nil {
			b.Fatal(err)
		}
		defer closeListener()
		measure(b, op)
	})

	res := do(b, http.MethodPut, p.URL+"/v1/functions/hello", map[string]string{"source": helloSource})
	if res.status != http.StatusCreated {
		b.Fatalf("deploy: %d %s", res.status, res.body)
	}
	callHello := func(url string) func() error {
		return func() error {
			res, err := http.Get(url + "/fn/hello?name=Ada")
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			return err
		}
	}
	b.Run("fn=hello_inprocess", func(b *testing.B) { measure(b, callHello(p.URL)) })

	// The default of serve and dev: Lua in a sandbox process.
	pp := platformtest.Start(b, platformtest.Options{Concurrency: 2, Processes: true})
	if res := do(b, http.MethodPut, pp.URL+"/v1/functions/hello", map[string]string{"source": helloSource}); res.status != http.StatusCreated {
		b.Fatalf("deploy: %d %s", res.status, res.body)
	}
	b.Run("fn=hello_process", func(b *testing.B) { measure(b, callHello(pp.URL)) })
}

const helloSource = `function handle(req) return "Hello, " .. (req.query.name or "world") .. "!" end`

// measure runs op b.N times and reports the median and 99th percentile.
func measure(b *testing.B, op func() error) {
	b.Helper()
	var samples bench.Samples
	for b.Loop() {
		d, err := bench.Time(op)
		if err != nil {
			b.Fatal(err)
		}
		samples = append(samples, d)
	}
	b.ReportMetric(bench.Millis(samples.Quantile(0.50)), "p50-ms")
	b.ReportMetric(bench.Millis(samples.Quantile(0.99)), "p99-ms")
}
