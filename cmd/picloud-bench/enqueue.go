package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/internal/bench"
	"github.com/picloud/picloud/queue"
)

// Metric names of the enqueue scenario.
const (
	enqueueScenario   = "enqueue"
	enqueueMany       = "picloud.invoke_many, one statement"
	enqueueNoTriggers = "picloud.invoke_many, invocations' insert triggers disabled"
	enqueuePerRow     = "picloud.invoke per row, one statement"
	enqueueRiver      = "River InsertManyFast, one COPY"
)

// enqueueRows is how many invocations (and River jobs) each enqueue
// statement writes.
func enqueueRows(s settings) int {
	if s.Quick {
		return 20_000
	}
	return 100_000
}

// enqueue measures how fast one SQL statement enqueues N invocations of a
// no-op function, with nothing running them: picloud.invoke_many, next to
// picloud.invoke called per row from generate_series, and next to River's
// InsertManyFast of N jobs. Both PiCloud statements build their payloads
// in the database from generate_series, and their clocks stop at the
// commit; River's includes encoding the jobs and its COPY.
//
// It also runs invoke_many with the invocations table's user triggers
// disabled, which shows what the per-row AFTER INSERT trigger
// invocations_announce_queued (0009_events.sql) costs a bulk insert.
//
// Each runs on a database of its own without workers, so that no worker
// competes for the machine or for the rows while the statement runs.
func enqueue(ctx context.Context, p *platform, s settings) ([]result, error) {
	return measureEnqueue(ctx, p, enqueueRows(s))
}

func measureEnqueue(ctx context.Context, p *platform, n int) ([]result, error) {
	limit := burndownLimitsFor(n).insert
	pool, drop, err := scratchDatabase(ctx, p, "picloud_bench_enqueue_", func(ctx context.Context, pool *pgxpool.Pool) error {
		_, err := queue.Migrate(ctx, pool)
		return err
	})
	if err != nil {
		return nil, err
	}
	defer drop()
	if _, _, err := catalog.New(pool).PutFunction(ctx, "noop", noopSource, catalog.FunctionOptions{}); err != nil {
		return nil, fmt.Errorf("deploy noop: %w", err)
	}

	const (
		many = `SELECT count(*) FROM picloud.invoke_many('noop', ARRAY(SELECT jsonb_build_object('i', g) FROM generate_series(1, $1) g))`
		// MATERIALIZED keeps the planner from copying the volatile
		// picloud.invoke call into the aggregate, as in the burn-down.
		perRow = `WITH ids AS MATERIALIZED (SELECT picloud.invoke('noop', jsonb_build_object('i', g)) AS id FROM generate_series(1, $1) g)
			SELECT count(*) FROM ids`
	)
	rate := func(statement string, rows int) (float64, error) {
		// Each statement starts from empty tables, so none pays for the
		// index pages another one grew.
		if err := truncateInvocations(ctx, pool); err != nil {
			return 0, fmt.Errorf("empty the tables: %w", err)
		}
		insertCtx, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		var count int
		d, err := bench.Time(func() error { return pool.QueryRow(insertCtx, statement, rows).Scan(&count) })
		if errors.Is(insertCtx.Err(), context.DeadlineExceeded) {
			return 0, fmt.Errorf("not done within %s: %w", limit, err)
		}
		if err != nil {
			return 0, err
		}
		var jobs int
		if jobs, err = availableJobs(ctx, pool); err != nil {
			return 0, fmt.Errorf("count the jobs: %w", err)
		}
		if count != rows || jobs != rows {
			return 0, fmt.Errorf("%d invocations and %d available jobs, want %d of each", count, jobs, rows)
		}
		return float64(rows) / d.Seconds(), nil
	}
	// The first statements of a connection plan and cache what the rest
	// reuse; a running application has done that already.
	if _, err := rate(many, min(n, 1000)); err != nil {
		return nil, fmt.Errorf("warm up picloud.invoke_many: %w", err)
	}
	manyRate, err := rate(many, n)
	if err != nil {
		return nil, fmt.Errorf("picloud.invoke_many of %d payloads: %w", n, err)
	}
	perRowRate, err := rate(perRow, n)
	if err != nil {
		return nil, fmt.Errorf("picloud.invoke per row, %d rows: %w", n, err)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE picloud.invocations DISABLE TRIGGER USER`); err != nil {
		return nil, fmt.Errorf("disable the triggers: %w", err)
	}
	noTriggersRate, err := rate(many, n)
	if err != nil {
		return nil, fmt.Errorf("picloud.invoke_many of %d payloads without triggers: %w", n, err)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE picloud.invocations ENABLE TRIGGER USER`); err != nil {
		return nil, fmt.Errorf("enable the triggers: %w", err)
	}
	riverRate, err := riverInsertRate(ctx, p, n, limit)
	if err != nil {
		return nil, err
	}
	baseline := enqueueScenario + " " + enqueueRiver
	return []result{
		{Scenario: enqueueScenario, Metric: enqueueMany, Unit: "rows/s", Value: manyRate, baselineMetric: baseline},
		{Scenario: enqueueScenario, Metric: enqueueNoTriggers, Unit: "rows/s", Value: noTriggersRate, baselineMetric: baseline},
		{Scenario: enqueueScenario, Metric: enqueuePerRow, Unit: "rows/s", Value: perRowRate, baselineMetric: baseline},
		{Scenario: enqueueScenario, Metric: enqueueRiver, Unit: "rows/s", Value: riverRate},
	}, nil
}

// riverInsertRate inserts n no-op jobs with InsertManyFast into a River
// database no client works, in a transaction of its own, and returns jobs
// per second up to its commit.
func riverInsertRate(ctx context.Context, p *platform, n int, limit time.Duration) (float64, error) {
	r, err := startRiverAlone(ctx, p, &river.Config{})
	if err != nil {
		return 0, err
	}
	defer r.close()
	insertCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	d, err := r.insertNoops(insertCtx, n)
	if err != nil {
		return 0, fmt.Errorf("insert %d river jobs: %w", n, err)
	}
	return float64(n) / d.Seconds(), nil
}
