// Package bench holds the measuring code shared by the project's Go
// benchmarks (api.BenchmarkSyncCall) and the benchmark harness
// (cmd/picloud-bench): latency samples and their quantiles, a closed-loop
// load generator, and the PostgreSQL floor operations every PiCloud call is
// built from, so both report the same thing in the same way.
package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Samples are latencies of one operation.
type Samples []time.Duration

// Quantile returns the q-quantile (0 <= q < 1) by the nearest-rank rule the
// Go benchmarks have always reported; zero when there are no samples.
func (s Samples) Quantile(q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	sorted := slices.Clone(s)
	slices.Sort(sorted)
	i := int(float64(len(sorted)) * q)
	return sorted[min(i, len(sorted)-1)]
}

// Millis expresses d in milliseconds, the unit every latency is reported in.
func Millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Time runs op once and returns how long it took.
func Time(op func() error) (time.Duration, error) {
	start := time.Now()
	err := op()
	return time.Since(start), err
}

// Sequential runs op n times, one after the other, and returns the
// latencies. It stops at the first error or when ctx ends.
func Sequential(ctx context.Context, n int, op func() error) (Samples, error) {
	samples := make(Samples, 0, n)
	for range n {
		if err := ctx.Err(); err != nil {
			return samples, err
		}
		d, err := Time(op)
		if err != nil {
			return samples, err
		}
		samples = append(samples, d)
	}
	return samples, nil
}

// Throughput runs op from clients goroutines, each starting its next call
// as soon as the previous one returns, for d, and returns the completed
// operations per second. A closed loop cannot overload the system, so the
// rate it reaches is the most the system serves at that concurrency.
func Throughput(ctx context.Context, clients int, d time.Duration, op func() error) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		done     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				if err := op(); err != nil {
					if ctx.Err() != nil {
						return // cut off by the deadline, not a failure
					}
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(done.Load()) / time.Since(start).Seconds(), nil
}

// SelectOne is the cheapest round trip to the server.
func SelectOne(ctx context.Context, pool *pgxpool.Pool) func() error {
	return func() error {
		var one int
		return pool.QueryRow(ctx, "SELECT 1").Scan(&one)
	}
}

// InsertCommit creates a scratch table and returns an operation that
// inserts one row in its own transaction: the cost of one durable write.
func InsertCommit(ctx context.Context, pool *pgxpool.Pool) (func() error, error) {
	if _, err := pool.Exec(ctx, "CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())"); err != nil {
		return nil, fmt.Errorf("create bench_floor: %w", err)
	}
	return func() error {
		_, err := pool.Exec(ctx, "INSERT INTO bench_floor DEFAULT VALUES")
		return err
	}, nil
}

// NotifyToListener returns an operation that sends a NOTIFY from the pool
// and waits until a dedicated listening connection receives it: the floor
// of waking a worker. close releases the listener.
func NotifyToListener(ctx context.Context, pool *pgxpool.Pool) (op func() error, closeFn func(), err error) {
	listener, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, nil, fmt.Errorf("connect the listener: %w", err)
	}
	closeFn = func() { _ = listener.Close(context.WithoutCancel(ctx)) }
	if _, err := listener.Exec(ctx, "LISTEN bench_floor"); err != nil {
		closeFn()
		return nil, nil, fmt.Errorf("listen: %w", err)
	}
	op = func() error {
		if _, err := pool.Exec(ctx, "SELECT pg_notify('bench_floor', 'x')"); err != nil {
			return err
		}
		_, err := listener.WaitForNotification(ctx)
		return err
	}
	return op, closeFn, nil
}
