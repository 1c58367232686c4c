package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgxlisten"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// This file and river_wake.go are the transport: the only files of the
// package that import River (a depguard rule in .golangci.yml holds it).
// The rest of the package reaches River through riverClient's methods,
// riverWorker, and the migration functions below.

// riverQueue is the one River queue every invocation travels through. River's
// per-queue costs (a fetch loop, settings reads) multiply with queues, and
// routing by function happens in the worker, so one queue is enough.
const riverQueue = "picloud"

// invocationArgs is the River job that carries one attempt of an invocation
// to a worker. picloud.schedule_attempts inserts these rows with plain SQL.
type invocationArgs struct {
	InvocationID int64 `json:"invocation_id"`
}

func (invocationArgs) Kind() string { return "picloud.invocation" }

// riverWorker hands the jobs River fetches to the invocation worker.
type riverWorker struct {
	river.WorkerDefaults[invocationArgs]
	worker *invocationWorker
}

// Work runs one attempt of an invocation and records its outcome
// (invocationWorker.work).
//
// The start and the outcome are written by the worker rather than by
// River: River's fetch only hands the job over, and River batches job
// completions every 250 ms, which would delay every synchronous caller. The
// start and the finish each go through a group commit (batch.go), so the
// jobs of one fetch start together in one statement and their outcomes are
// recorded together too. The River job row is completed later in River's
// batch; if the process dies in between, the job is delivered again, finds
// its invocation final and does nothing.
//
// Retries are PiCloud's, not River's: a failed attempt with attempts left
// schedules a new job (picloud.retry_invocation), because River makes a
// retried job available again only on its leader's 5-second scheduler tick
// and wakes no producer, while a retry here must start within milliseconds of
// its due time, and the invocation row must keep every attempt's error.
func (w riverWorker) Work(ctx context.Context, job *river.Job[invocationArgs]) error {
	err := w.worker.work(ctx, job.Args.InvocationID)
	if errors.Is(err, errStartLater) {
		// The job comes back after the snooze.
		return river.JobSnooze(startRetry)
	}
	return err
}

// riverClient is this node's River client and the listener that feeds it
// (river_wake.go).
type riverClient struct {
	client *river.Client[pgx.Tx]
	wake   *wakeListener
}

// newRiverClient makes the River client that fetches the invocations
// c.worker runs.
func (c *Client) newRiverClient() (*riverClient, error) {
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, riverWorker{worker: c.worker}); err != nil {
		return nil, fmt.Errorf("register worker: %w", err)
	}
	driver := newRiverDriver(c)
	rc, err := river.NewClient(driver, &river.Config{
		ID:     c.config.ID,
		Schema: Schema,
		// More jobs than run slots: a fetch hands over a batch, which is
		// started in one statement; the jobs past the slots wait in
		// waitForSandbox.
		Queues:  map[string]river.QueueConfig{riverQueue: {MaxWorkers: c.config.InFlight}},
		Workers: workers,
		// River waits FetchCooldown (100 ms by default) between two fetches
		// of a queue, so back-to-back sync calls would queue up behind it.
		// 1 ms is River's floor and still batches a burst into few fetches.
		FetchCooldown: time.Millisecond,
		// Work arrives by NOTIFY from picloud.schedule_attempts, at commit;
		// the poll is only a safety net for a wake-up lost while River's
		// LISTEN connection reconnects, so it can be rare.
		FetchPollInterval: 10 * time.Minute,
		// River's leader runs maintenance on fixed tickers whether or not
		// anything is due: an election every 5 s, a scheduler every 5 s, a
		// rescuer and a cleaner every 30 s, about 50 statements a minute
		// on an idle database (measured with picloud stats idle). PiCloud
		// does each of these jobs itself, on timers armed for the moment
		// something is due: promote_due schedules, rescue_overdue rescues,
		// sweep cleans. So no client ever leads.
		LeaderElectionDisabled: true,
		// The executor enforces each invocation's own limits; River's
		// per-job timeout (1 min by default) would cut long functions short.
		JobTimeout: -1,
		// River reports every start and stop at info level; only its
		// warnings and errors are news for a PiCloud operator.
		Logger: slog.New(warnOnly{c.logger.Handler()}).With("component", "river"),
	})
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return &riverClient{client: rc, wake: driver.listener}, nil
}

// id names this node in River's job rows (attempted_by).
func (r *riverClient) id() string { return r.client.ID() }

// handleWake feeds River's listener from the node's listener, which hears
// channel, picloud.wake_channel().
func (r *riverClient) handleWake(listener *pgxlisten.Listener, channel string) {
	r.wake.setChannel(channel)
	listener.Handle(channel, riverWakeHandler{r.wake})
}

// start starts fetching; River works until ctx ends or stop.
func (r *riverClient) start(ctx context.Context) error {
	if err := r.client.Start(ctx); err != nil {
		return fmt.Errorf("start river: %w", err)
	}
	return nil
}

// stop stops fetching and waits for the jobs River handed over, until ctx
// ends.
func (r *riverClient) stop(ctx context.Context) error {
	err := r.client.Stop(ctx)
	if err != nil {
		// The drain ran out of time: cancel what is still running, which
		// records those invocations as cancelled.
		cancelCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err = r.client.StopAndCancel(cancelCtx)
		cancel()
	}
	return err
}

// riverMigrations returns the SQL of River's migrations, oldest first.
func riverMigrations() ([]string, error) {
	migrator, err := rivermigrate.New(riverpgxv5.New(nil), nil)
	if err != nil {
		return nil, fmt.Errorf("river migrations: %w", err)
	}
	var sql []string
	for _, m := range migrator.AllVersions() {
		sql = append(sql, m.SQLUp)
	}
	return sql, nil
}

// migrateRiver applies River's migrations to Schema.
func migrateRiver(ctx context.Context, pool *pgxpool.Pool) error {
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{
		Schema: Schema,
		// Migrate returns River's errors; its progress lines are noise.
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return fmt.Errorf("river migrator: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	return nil
}

// warnOnly passes on records of level warn and above.
type warnOnly struct{ slog.Handler }

func (h warnOnly) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= slog.LevelWarn && h.Handler.Enabled(ctx, level)
}

func (h warnOnly) WithAttrs(attrs []slog.Attr) slog.Handler {
	return warnOnly{h.Handler.WithAttrs(attrs)}
}

func (h warnOnly) WithGroup(name string) slog.Handler { return warnOnly{h.Handler.WithGroup(name)} }
