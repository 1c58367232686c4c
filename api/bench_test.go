package api_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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

	b.Run("floor=select1", func(b *testing.B) {
		measure(b, func() error {
			var one int
			return p.Pool.QueryRow(ctx, "SELECT 1").Scan(&one)
		})
	})

	b.Run("floor=insert_commit", func(b *testing.B) {
		if _, err := p.Pool.Exec(ctx, "CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())"); err != nil {
			b.Fatal(err)
		}
		measure(b, func() error {
			_, err := p.Pool.Exec(ctx, "INSERT INTO bench_floor DEFAULT VALUES")
			return err
		})
	})

	b.Run("floor=notify_to_listener", func(b *testing.B) {
		listener, err := pgx.ConnectConfig(ctx, p.Pool.Config().ConnConfig.Copy())
		if err != nil {
			b.Fatal(err)
		}
		defer listener.Close(ctx)
		if _, err := listener.Exec(ctx, "LISTEN bench_floor"); err != nil {
			b.Fatal(err)
		}
		measure(b, func() error {
			if _, err := p.Pool.Exec(ctx, "SELECT pg_notify('bench_floor', 'x')"); err != nil {
				return err
			}
			_, err := listener.WaitForNotification(ctx)
			return err
		})
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
	var samples []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		samples = append(samples, time.Since(start))
	}
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(samples[len(samples)*99/100].Microseconds())/1000, "p99-ms")
}
