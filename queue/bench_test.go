package queue_test

import (
	"context"
	"flag"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/internal/dbtest"
	"github.com/picloud/picloud/internal/platformtest"
	"github.com/picloud/picloud/queue"
)

var (
	burnJobs        = flag.Int("burndown.jobs", 100_000, "invocations per BenchmarkBurnDown run")
	burnConcurrency = flag.Int("burndown.concurrency", 32, "workers for BenchmarkBurnDown, PiCloud and River alike")
)

// BenchmarkBurnDown enqueues a batch of no-op invocations from SQL in one
// statement and measures how fast a worker runs them all, next to River
// alone burning down the same number of no-op jobs inserted with its Go
// API (InsertManyFast), with the same number of workers and the same fetch
// settings, in the same run:
//
//	go test -run '^$' -bench BurnDown -benchtime 1x -timeout 30m ./queue/
//
// Metrics: enqueue-per-s (the INSERT), done-per-s (from commit to the last
// finish), and the median and 99th percentile of start minus enqueue.
func BenchmarkBurnDown(b *testing.B) {
	b.Run("picloud=sql_invoke", func(b *testing.B) {
		for b.Loop() {
			burnDownPiCloud(b)
		}
	})
	b.Run("river=insert_many_fast", func(b *testing.B) {
		for b.Loop() {
			burnDownRiver(b)
		}
	})
}

func burnDownPiCloud(b *testing.B) {
	ctx := context.Background()
	pool := platformtest.Database(b)
	sandboxes := executor.NewPool(executor.Config{Size: *burnConcurrency})
	defer sandboxes.Close()
	client, err := queue.NewClient(pool, queue.Config{Executor: sandboxes, Concurrency: *burnConcurrency})
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := catalogOf(client).PutFunction(ctx, "noop", `function handle(req) end`, catalog.FunctionOptions{}); err != nil {
		b.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer client.Stop(ctx)

	start := time.Now()
	if _, err := pool.Exec(ctx, `SELECT picloud.invoke('noop', jsonb_build_object('i', g)) FROM generate_series(1, $1) g`, *burnJobs); err != nil {
		b.Fatal(err)
	}
	committed := time.Now()
	waitUntil(b, pool, `SELECT count(*) FROM picloud.invocations WHERE status = 'succeeded'`)
	report(b, start, committed, time.Now(), pool,
		`SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at)),
		        percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at))
		 FROM picloud.invocations`)
}

type noopArgs struct {
	I int `json:"i"`
}

func (noopArgs) Kind() string { return "noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
}

func (noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

func burnDownRiver(b *testing.B) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dbtest.CreateDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		b.Fatal(err)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, noopWorker{})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: *burnConcurrency}},
		Workers:           workers,
		FetchCooldown:     time.Millisecond, // as PiCloud's
		FetchPollInterval: time.Minute,
	})
	if err != nil {
		b.Fatal(err)
	}
	params := make([]river.InsertManyParams, *burnJobs)
	for i := range params {
		params[i] = river.InsertManyParams{Args: noopArgs{I: i}}
	}

	start := time.Now()
	if _, err := client.InsertManyFast(ctx, params); err != nil {
		b.Fatal(err)
	}
	committed := time.Now()
	if err := client.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer client.Stop(ctx)
	waitUntil(b, pool, `SELECT count(*) FROM river_job WHERE state = 'completed'`)
	report(b, start, committed, time.Now(), pool,
		`SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM attempted_at - created_at)),
		        percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM attempted_at - created_at))
		 FROM river_job`)
}

// waitUntil polls a count until it reaches the batch size. Polling is fine
// here: it measures the system, it is not part of it.
func waitUntil(b *testing.B, pool *pgxpool.Pool, countSQL string) {
	b.Helper()
	deadline := time.Now().Add(20 * time.Minute)
	for {
		var n int
		if err := pool.QueryRow(context.Background(), countSQL).Scan(&n); err != nil {
			b.Fatal(err)
		}
		if n >= *burnJobs {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d done after 20 minutes", n, *burnJobs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func report(b *testing.B, start, committed, done time.Time, pool *pgxpool.Pool, percentilesSQL string) {
	b.Helper()
	var p50, p99 float64
	if err := pool.QueryRow(context.Background(), percentilesSQL).Scan(&p50, &p99); err != nil {
		b.Fatal(err)
	}
	n := float64(*burnJobs)
	b.ReportMetric(n/committed.Sub(start).Seconds(), "enqueue-per-s")
	b.ReportMetric(n/done.Sub(committed).Seconds(), "done-per-s")
	b.ReportMetric(p50*1000, "p50-start-ms")
	b.ReportMetric(p99*1000, "p99-start-ms")
}

// BenchmarkScheduledStart measures how late a scheduled invocation starts
// after its run_at on an otherwise idle system: the timer armed from the
// picloud_due notification, not a poll, starts it.
//
//	go test -run '^$' -bench ScheduledStart -benchtime 100x ./queue/
func BenchmarkScheduledStart(b *testing.B) {
	ctx := context.Background()
	pool := platformtest.Database(b)
	sandboxes := executor.NewPool(executor.Config{Size: 2})
	defer sandboxes.Close()
	client, err := queue.NewClient(pool, queue.Config{Executor: sandboxes, Concurrency: 2})
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := catalogOf(client).PutFunction(ctx, "noop", `function handle(req) end`, catalog.FunctionOptions{}); err != nil {
		b.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer client.Stop(ctx)
	var late []time.Duration
	for b.Loop() {
		runAt := time.Now().Add(50 * time.Millisecond)
		enq, err := client.Invoke(ctx, queue.InvokeParams{Function: "noop", Trigger: queue.TriggerAPI, RunAt: runAt})
		if err != nil {
			b.Fatal(err)
		}
		inv, err := client.WaitEnqueued(ctx, enq)
		if err != nil || inv.StartedAt == nil {
			b.Fatalf("%+v %v", inv, err)
		}
		late = append(late, inv.StartedAt.Sub(runAt))
	}
	slices.Sort(late)
	b.ReportMetric(float64(late[len(late)/2].Microseconds())/1000, "p50-late-ms")
	b.ReportMetric(float64(late[len(late)*99/100].Microseconds())/1000, "p99-late-ms")
}
