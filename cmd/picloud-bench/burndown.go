package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/internal/bench"
	"github.com/picloud/picloud/queue"
)

// Metric names of the burn-down rows; the River-alone rows they are
// compared with are in river.go.
const (
	burndownScenario          = "burndown"
	burndownInProcessScenario = "burndown in-process"
	burndownInsert            = "picloud.invoke insert, one statement"
	burndownRate              = "picloud.invoke burn-down"
)

// burndownJobs is how many invocations (and River jobs) a burn-down
// inserts at once.
func burndownJobs(s settings) int {
	if s.Quick {
		return 10_000
	}
	return 100_000
}

// burndownLimits bound a burn-down so that a regression fails the run
// with a clear message instead of stalling it: a budget per row on top of
// a fixed allowance, about twice what the rows took on a loaded 2-core
// machine (up to 1 ms a row to insert with picloud.invoke, 300 to 400
// invocations a second to burn). A burn-down that stops making progress
// fails sooner, after burndownStall.
type burndownLimits struct {
	insert time.Duration
	burn   time.Duration
}

func burndownLimitsFor(n int) burndownLimits {
	return burndownLimits{
		insert: 10*time.Second + time.Duration(n)*2*time.Millisecond,
		burn:   20*time.Second + time.Duration(n)*4*time.Millisecond,
	}
}

// burndownStall is how long a burn-down may go without its lowest
// unfinished id moving before it is declared stuck.
const burndownStall = 30 * time.Second

// burndownPoll is how often a burn-down checks whether it is over. The end
// time comes from the rows, not from the poll, so the poll only needs to
// be cheap, not frequent.
const burndownPoll = 50 * time.Millisecond

// sqlBurndown inserts N invocations of a no-op function in one SQL
// statement and measures how fast the statement writes them, then how
// fast the platform works through them: from the statement's commit to
// the last finished_at, both read from the database's clock.
func sqlBurndown(ctx context.Context, p *platform, s settings) ([]result, error) {
	return measureSQLBurndown(ctx, p, burndownJobs(s), burndownScenario)
}

// inProcessBurndown is sqlBurndown with Lua run in this process
// (executor.Pool) rather than in sandbox processes: the difference is what
// the sandboxes' pipes cost. It runs on a database of its own, so that the
// platform's worker takes no part.
func inProcessBurndown(ctx context.Context, p *platform, s settings) ([]result, error) {
	return measureInProcessBurndown(ctx, p, burndownJobs(s), s.Concurrency)
}

func measureInProcessBurndown(ctx context.Context, p *platform, n, concurrency int) ([]result, error) {
	pool, drop, err := scratchDatabase(ctx, p, "picloud_bench_inproc_", func(ctx context.Context, pool *pgxpool.Pool) error {
		_, err := queue.Migrate(ctx, pool)
		return err
	})
	if err != nil {
		return nil, err
	}
	defer drop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	lua := executor.NewPool(executor.Config{Size: concurrency, Logger: logger})
	defer lua.Close()
	client, err := queue.NewClient(pool, queue.Config{Executor: lua, Concurrency: concurrency, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("queue client: %w", err)
	}
	if err := client.Start(ctx); err != nil {
		return nil, fmt.Errorf("start queue client: %w", err)
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := client.Stop(stopCtx); err != nil {
			logger.Warn("stop queue client", slog.Any("err", err))
		}
	}()
	return measureSQLBurndown(ctx, &platform{pool: pool, client: client}, n, burndownInProcessScenario)
}

func measureSQLBurndown(ctx context.Context, p *platform, n int, scenario string) ([]result, error) {
	limits := burndownLimitsFor(n)
	if err := deploy(ctx, p, "noop", noopSource); err != nil {
		return nil, err
	}
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire a connection: %w", err)
	}
	defer conn.Release()

	insertCtx, cancel := context.WithTimeout(ctx, limits.insert)
	defer cancel()
	var (
		lo, hi, count int64
		committed     time.Time
	)
	// One autocommit statement. MATERIALIZED keeps the planner from
	// copying the volatile picloud.invoke call into each aggregate.
	insertTime, err := bench.Time(func() error {
		return conn.QueryRow(insertCtx, `WITH ids AS MATERIALIZED (SELECT picloud.invoke('noop') AS id FROM generate_series(1, $1))
			SELECT min(id), max(id), count(*) FROM ids`, n).Scan(&lo, &hi, &count)
	})
	if err != nil {
		if errors.Is(insertCtx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("insert %d invocations in one statement: not done within %s: %w", n, limits.insert, err)
		}
		return nil, fmt.Errorf("insert %d invocations in one statement: %w", n, err)
	}
	// Right after the commit, on the same connection: the workers cannot
	// have seen a row before it, and the round trip is noise next to the
	// seconds the burn-down takes.
	if err := conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&committed); err != nil {
		return nil, fmt.Errorf("read the commit time: %w", err)
	}
	conn.Release()
	if count != int64(n) || hi-lo+1 != count {
		return nil, fmt.Errorf("insert %d invocations: got %d ids from %d to %d, want %d consecutive ones", n, count, lo, hi, n)
	}

	if err := waitBurndown(ctx, p.pool, limits.burn, "invocations",
		`SELECT id FROM picloud.invocations WHERE id >= $1 AND id <= $2 AND status IN ('queued', 'running') ORDER BY id LIMIT 1`,
		lo, hi); err != nil {
		return nil, err
	}
	var (
		succeeded int64
		last      time.Time
	)
	if err := p.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'succeeded'), max(finished_at)
		FROM picloud.invocations WHERE id >= $1 AND id <= $2`, lo, hi).Scan(&succeeded, &last); err != nil {
		return nil, fmt.Errorf("read the burn-down's end: %w", err)
	}
	if succeeded != int64(n) {
		return nil, fmt.Errorf("burn-down: %d of %d invocations succeeded", succeeded, n)
	}
	burn := last.Sub(committed)
	if burn <= 0 {
		return nil, fmt.Errorf("burn-down: last finished_at %s is not after the commit at %s", last, committed)
	}
	return []result{
		{
			Scenario: scenario, Metric: burndownInsert, Unit: "rows/s", Value: float64(n) / insertTime.Seconds(),
			baselineMetric: riverScenario + " " + riverBurndownInsert,
		},
		{
			Scenario: scenario, Metric: burndownRate, Unit: "ops/s", Value: float64(n) / burn.Seconds(),
			baselineMetric: riverScenario + " " + riverBurndownRate,
		},
	}, nil
}

// waitBurndown polls until next, a query for the lowest id in [lo, hi]
// still unfinished, finds none. Each poll starts at the lowest id the
// previous one found, so together the polls read every row about once
// instead of counting the whole range 20 times a second while the
// workers are busy with it.
func waitBurndown(ctx context.Context, pool *pgxpool.Pool, limit time.Duration, what, next string, lo, hi int64) error {
	start := time.Now()
	progressed := start
	for {
		var id int64
		err := pool.QueryRow(ctx, next, lo, hi).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("poll the burn-down of %s: %w", what, err)
		}
		now := time.Now()
		if id > lo {
			lo, progressed = id, now
		}
		switch {
		case now.Sub(progressed) > burndownStall:
			return fmt.Errorf("burn-down of %s stuck: id %d has not finished in %s (ids up to %d pending)", what, lo, burndownStall, hi)
		case now.Sub(start) > limit:
			return fmt.Errorf("burn-down of %s not over within %s: ids %d to %d not all finished", what, limit, lo, hi)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(burndownPoll):
		}
	}
}
