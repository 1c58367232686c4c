package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/picloud/picloud/internal/bench"
)

// Names of the River-alone rows, the baselines of the burn-down and wake
// rows. The wake names are prefixes: latency() adds " p50" and " p99".
const (
	riverScenario       = "river"
	riverBurndownInsert = "InsertManyFast insert, one COPY"
	riverBurndownRate   = "no-op burn-down, tuned"
	riverWakeTuned      = "wake insert to work, fetch cooldown 1 ms"
	riverWakeIdle       = "wake insert to work, defaults, idle"
)

// riverTunedWorkers is the tuned client's MaxWorkers. No-op jobs finish
// at once, so workers are cheap; what bounds River is one fetch per
// FetchCooldown of at most this many jobs, and the batched completions.
const riverTunedWorkers = 1000

// riverDefaultWorkers is the MaxWorkers of River's documented example;
// River has no default for it.
const riverDefaultWorkers = 100

// riverIdleSpacing separates the inserts of the idle default wake run. A
// default client sends an insert's NOTIFY only when its previous one is a
// FetchCooldown (100 ms) old, and its producer fetches at once only when
// its fetch limiter is at rest: the completion of the previous job asks
// for a fetch one cooldown after the one that found it, and the limiter
// rests one cooldown after that. Closer inserts wait for a fetch already
// scheduled, which is what the run at the wake scenario's spacing
// measures. Even spaced, an insert that lands just after the 1 s fallback
// poll waits out a cooldown: that is the default's tail.
const riverIdleSpacing = 5 * river.FetchCooldownDefault / 2

// riverWakeTrickleMetric names the default client's wake row at the
// spacing of the wake scenario.
func riverWakeTrickleMetric(spacing time.Duration) string {
	return fmt.Sprintf("wake insert to work, defaults, %s apart", spacing)
}

type riverNoopArgs struct{}

func (riverNoopArgs) Kind() string { return "bench_noop" }

type riverNoopWorker struct {
	river.WorkerDefaults[riverNoopArgs]
}

func (riverNoopWorker) Work(context.Context, *river.Job[riverNoopArgs]) error { return nil }

// riverTunedConfig is River set up for throughput: many workers, the
// shortest fetch cooldown, and no fallback poll to speak of, since every
// insert sends a NOTIFY.
func riverTunedConfig() *river.Config {
	return &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: riverTunedWorkers}},
		FetchCooldown:     river.FetchCooldownMin,
		FetchPollInterval: 10 * time.Minute,
	}
}

// riverDefaultConfig is River as its documentation sets it up.
func riverDefaultConfig() *river.Config {
	return &river.Config{Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: riverDefaultWorkers}}}
}

// riverAlone is River's client working no-op jobs on a database of its
// own: no PiCloud tables, no Lua, no HTTP.
type riverAlone struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
	close  func()
}

// startRiverAlone creates a database next to the platform's, migrates it
// with River's migrations only, and makes a client with config (its
// workers and logger are filled in), started unless config has no queues:
// such a client only inserts. close stops the client and drops the
// database.
// insertNoops inserts n no-op jobs with InsertManyFast in a transaction of
// its own, so that the clock stops at the commit workers wait for, and
// returns how long it took.
func (r *riverAlone) insertNoops(ctx context.Context, n int) (time.Duration, error) {
	params := make([]river.InsertManyParams, n)
	for i := range params {
		params[i].Args = riverNoopArgs{}
	}
	return bench.Time(func() error {
		tx, err := r.pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		inserted, err := r.client.InsertManyFastTx(ctx, tx, params)
		if err != nil {
			return err
		}
		if inserted != n {
			return fmt.Errorf("inserted %d jobs, want %d", inserted, n)
		}
		return tx.Commit(ctx)
	})
}

func startRiverAlone(ctx context.Context, p *platform, config *river.Config) (*riverAlone, error) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	pool, cleanup, err := scratchDatabase(ctx, p, "picloud_bench_river_", func(ctx context.Context, pool *pgxpool.Pool) error {
		migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: logger})
		if err != nil {
			return fmt.Errorf("river migrator: %w", err)
		}
		if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
			return fmt.Errorf("river migrate up: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, riverNoopWorker{})
	config.Workers, config.Logger = workers, logger
	client, err := river.NewClient(riverpgxv5.New(pool), config)
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("river client: %w", err)
	}
	started := len(config.Queues) > 0
	if started {
		if err := client.Start(ctx); err != nil {
			cleanup()
			return nil, fmt.Errorf("start river client: %w", err)
		}
	}
	return &riverAlone{
		pool:   pool,
		client: client,
		close: func() {
			if started {
				stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				defer cancel()
				if err := client.Stop(stopCtx); err != nil {
					logger.Warn("stop river client", slog.Any("err", err))
				}
			}
			cleanup()
		},
	}, nil
}

// scratchDatabase creates a database next to the platform's, opens it with
// the platform's pool settings (so that what runs there gets the
// connections PiCloud gets) and prepares it with migrate. drop closes the
// pool and drops the database.
func scratchDatabase(ctx context.Context, p *platform, prefix string, migrate func(context.Context, *pgxpool.Pool) error) (pool *pgxpool.Pool, drop func(), err error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := prefix + hex.EncodeToString(b[:])
	ident := pgx.Identifier{name}.Sanitize()
	// The platform's connection can create the database: the harness
	// already needs CREATE DATABASE for its own.
	if _, err := p.pool.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return nil, nil, fmt.Errorf("create database %s: %w", name, err)
	}
	dropDatabase := func() {
		_, _ = p.pool.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)")
	}
	poolConfig := p.pool.Config()
	poolConfig.ConnConfig.Database = name
	pool, err = pgxpool.NewWithConfig(ctx, poolConfig)
	if err != nil {
		dropDatabase()
		return nil, nil, fmt.Errorf("open database %s: %w", name, err)
	}
	drop = func() { pool.Close(); dropDatabase() }
	if err := migrate(ctx, pool); err != nil {
		drop()
		return nil, nil, fmt.Errorf("prepare database %s: %w", name, err)
	}
	return pool, drop, nil
}

// riverBurndown is the baseline of sqlBurndown: the same number of no-op
// jobs inserted with one COPY (InsertManyFast) and burned by River alone,
// tuned for throughput.
func riverBurndown(ctx context.Context, p *platform, s settings) ([]result, error) {
	return measureRiverBurndown(ctx, p, burndownJobs(s))
}

func measureRiverBurndown(ctx context.Context, p *platform, n int) ([]result, error) {
	limits := burndownLimitsFor(n)
	r, err := startRiverAlone(ctx, p, riverTunedConfig())
	if err != nil {
		return nil, err
	}
	defer r.close()

	var lo int64
	if err := r.pool.QueryRow(ctx, "SELECT coalesce(max(id), 0) + 1 FROM river_job").Scan(&lo); err != nil {
		return nil, fmt.Errorf("read the first job id: %w", err)
	}
	hi := lo + int64(n) - 1
	insertCtx, cancel := context.WithTimeout(ctx, limits.insert)
	defer cancel()
	insertTime, err := r.insertNoops(insertCtx, n)
	// River stamps finalized_at with the clock of the process that worked
	// the job, this one, so the burn-down starts on the same clock.
	committed := time.Now()
	if err != nil {
		if errors.Is(insertCtx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("insert %d river jobs: not done within %s: %w", n, limits.insert, err)
		}
		return nil, fmt.Errorf("insert %d river jobs: %w", n, err)
	}

	if err := waitBurndown(ctx, r.pool, limits.burn, "river jobs",
		`SELECT id FROM river_job WHERE id >= $1 AND id <= $2 AND state <> 'completed' ORDER BY id LIMIT 1`,
		lo, hi); err != nil {
		return nil, err
	}
	var (
		completed int64
		last      time.Time
	)
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'completed'), max(finalized_at)
		FROM river_job WHERE id >= $1 AND id <= $2`, lo, hi).Scan(&completed, &last); err != nil {
		return nil, fmt.Errorf("read the river burn-down's end: %w", err)
	}
	if completed != int64(n) {
		return nil, fmt.Errorf("river burn-down: %d of %d jobs completed (ids %d to %d)", completed, n, lo, hi)
	}
	// finalized_at is when Work returned; River writes completions in
	// batches up to 250 ms later, so this end flatters River slightly
	// next to PiCloud's finished_at, which is written as the row finishes.
	burn := last.Sub(committed)
	if burn <= 0 {
		return nil, fmt.Errorf("river burn-down: last finalized_at %s is not after the commit at %s", last, committed)
	}
	return []result{
		{Scenario: riverScenario, Metric: riverBurndownInsert, Unit: "rows/s", Value: float64(n) / insertTime.Seconds()},
		{Scenario: riverScenario, Metric: riverBurndownRate, Unit: "ops/s", Value: float64(n) / burn.Seconds()},
	}, nil
}

// riverWake is the baseline of wake: River alone, idle, given one job at a
// time through its client's Insert (which sends the NOTIFY), measured as
// attempted_at - created_at, both stamped by the database as PiCloud's
// started_at - created_at are. It runs River tuned (1 ms cooldown) at the
// wake scenario's spacing, then River's defaults twice: spaced so that
// every insert finds the client at rest (the best defaults do), and at the
// wake scenario's spacing, where most inserts wait for a fetch the
// cooldown has already scheduled. River's created_at is the insert
// transaction's start, a round trip or two before its commit, where
// PiCloud's is taken inside its one statement: River's figures carry
// those round trips.
func riverWake(ctx context.Context, p *platform, s settings) ([]result, error) {
	idle := 120
	if s.Quick {
		idle = 40
	}
	return measureRiverWake(ctx, p, s.WakeEnqueues, s.WakeSpacing, idle)
}

// measureRiverWake takes n samples spaced by spacing from the tuned client
// and the default one, and idle samples from the default one at rest.
func measureRiverWake(ctx context.Context, p *platform, n int, spacing time.Duration, idle int) ([]result, error) {
	var rs []result
	for _, run := range []struct {
		metric  string
		config  *river.Config
		n       int
		spacing time.Duration
	}{
		{riverWakeTuned, riverTunedConfig(), n, spacing},
		{riverWakeIdle, riverDefaultConfig(), idle, riverIdleSpacing},
		{riverWakeTrickleMetric(spacing), riverDefaultConfig(), n, spacing},
	} {
		samples, err := riverWakeSamples(ctx, p, run.config, run.n, run.spacing)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", run.metric, err)
		}
		rs = append(rs, latency(riverScenario, run.metric, samples, "")...)
	}
	return rs, nil
}

func riverWakeSamples(ctx context.Context, p *platform, config *river.Config, n int, spacing time.Duration) (bench.Samples, error) {
	r, err := startRiverAlone(ctx, p, config)
	if err != nil {
		return nil, err
	}
	defer r.close()
	insert := func(count int) ([]int64, error) {
		ids := make([]int64, 0, count)
		for range count {
			res, err := r.client.Insert(ctx, riverNoopArgs{}, nil)
			if err != nil {
				return nil, fmt.Errorf("insert: %w", err)
			}
			ids = append(ids, res.Job.ID)
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(spacing):
			}
		}
		return ids, nil
	}
	// The first inserts open the pool's connections; a client that has
	// been running for a while has them already.
	if _, err := insert(5); err != nil {
		return nil, err
	}
	ids, err := insert(n)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var pending int
		if err := r.pool.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE id = ANY($1) AND attempted_at IS NULL", ids).Scan(&pending); err != nil {
			return nil, fmt.Errorf("count pending jobs: %w", err)
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d jobs did not start within a minute", pending, len(ids))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(burndownPoll):
		}
	}
	rows, err := r.pool.Query(ctx, "SELECT attempted_at - created_at FROM river_job WHERE id = ANY($1)", ids)
	if err != nil {
		return nil, fmt.Errorf("read wake latencies: %w", err)
	}
	samples, err := pgx.CollectRows(rows, pgx.RowTo[time.Duration])
	if err != nil {
		return nil, fmt.Errorf("read wake latencies: %w", err)
	}
	if len(samples) != len(ids) {
		return nil, fmt.Errorf("read %d wake latencies for %d jobs", len(samples), len(ids))
	}
	return samples, nil
}

// truncateInvocations empties PiCloud's invocations and the River jobs that
// carry them. It lives here, with the River baseline, because this is the
// one file of the harness that names River's tables.
func truncateInvocations(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, `TRUNCATE picloud.invocations, picloud.river_job, picloud.idempotency_keys`)
	return err
}

// availableJobs counts River's jobs waiting for a worker.
func availableJobs(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var n int
	err := pool.QueryRow(ctx, `SELECT count(*) FROM picloud.river_job WHERE state = 'available'`).Scan(&n)
	return n, err
}
