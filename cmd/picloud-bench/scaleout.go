package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/picloud/picloud/catalog"
)

// scaleOutInvocations is how many invocations each burn-down enqueues.
// The bulk enqueue itself costs about 140 µs a row, so this also bounds
// the scenario's time.
func scaleOutInvocations(s settings) int {
	if s.Quick {
		return 5_000
	}
	return 10_000
}

// scaleOutCap bounds one burn-down on a machine too slow or too busy to
// finish the backlog in time: the rate is then that of the invocations
// finished by the cap, which a steady burn-down keeps, and the row giving
// how many were measured says so.
func scaleOutCap(s settings) time.Duration {
	if s.Quick {
		return 15 * time.Second
	}
	return 90 * time.Second
}

// burnDown is one run of the scale-out scenario.
type burnDown struct {
	workers  int
	enqueue  time.Duration // the one INSERT statement, commit included
	finished int           // invocations measured: all unless the cap was reached
	elapsed  time.Duration // from the commit until the last finished_at, or the cap
}

// scaleOut measures how fast `picloud worker` processes burn down a
// backlog of no-op invocations enqueued by SQL in one statement, with one
// worker and then two, each on a fresh database. The workers share the
// machine's cores with PostgreSQL and each other, so on a small machine
// two may be no faster than one.
func (b *picloudBinary) scaleOut(ctx context.Context, p *platform, s settings) ([]result, error) {
	return b.measureScaleOut(ctx, adminURL(p), s.Concurrency, scaleOutInvocations(s), scaleOutCap(s))
}

// measureScaleOut burns down n invocations with one worker and then two,
// each running concurrency invocations at once, on the server of admin.
func (b *picloudBinary) measureScaleOut(ctx context.Context, admin string, concurrency, n int, limit time.Duration) ([]result, error) {
	var runs []burnDown
	for _, workers := range []int{1, 2} {
		run, err := b.burnDown(ctx, admin, workers, concurrency, n, limit)
		if err != nil {
			return nil, fmt.Errorf("%d worker(s): %w", workers, err)
		}
		runs = append(runs, run)
	}
	rs := make([]result, 0, 3*len(runs))
	for _, r := range runs {
		row := result{Scenario: "scale-out", Metric: burnDownMetric(r.workers), Unit: "invocations/s", Value: float64(r.finished) / r.elapsed.Seconds()}
		if r.workers > 1 {
			row.baselineMetric = "scale-out " + burnDownMetric(1)
		}
		rs = append(rs, row)
	}
	for _, r := range runs {
		rs = append(rs, result{
			Scenario: "scale-out", Metric: fmt.Sprintf("enqueue of %d invocations in one statement, %s run", n, workersName(r.workers)),
			Unit: "ms", Value: float64(r.enqueue.Microseconds()) / 1000,
		})
	}
	for _, r := range runs {
		rs = append(rs, result{
			Scenario: "scale-out", Metric: fmt.Sprintf("invocations finished within the %v cap, %s run", limit, workersName(r.workers)),
			Unit: "invocations", Value: float64(r.finished),
		})
	}
	return rs, nil
}

func burnDownMetric(workers int) string {
	return "burn-down, " + workersName(workers)
}

func workersName(workers int) string {
	if workers == 1 {
		return "1 worker"
	}
	return strconv.Itoa(workers) + " workers"
}

// burnDown starts workers on a fresh database with noop deployed, enqueues
// n invocations of it in one statement once they are ready, and waits
// until all have finished, or limit has passed.
func (b *picloudBinary) burnDown(ctx context.Context, admin string, workers, concurrency, n int, limit time.Duration) (run burnDown, err error) {
	run.workers = workers
	db, err := (&server{admin: admin}).freshDatabase(ctx)
	if err != nil {
		return run, err
	}
	defer db.drop()
	if _, _, err := catalog.New(db.pool).PutFunction(ctx, "noop", noopSource, catalog.FunctionOptions{}); err != nil {
		return run, fmt.Errorf("deploy noop: %w", err)
	}
	dbURL, err := withDatabase(admin, db.pool.Config().ConnConfig.Database)
	if err != nil {
		return run, err
	}

	nodes := make([]*nodeProcess, 0, workers)
	defer func() {
		for _, node := range nodes {
			if stopErr := node.stop(30 * time.Second); stopErr != nil && err == nil {
				err = stopErr
			}
		}
	}()
	ready := make([]string, 0, workers)
	for i := range workers {
		addr, err := freeAddr()
		if err != nil {
			return run, err
		}
		name := fmt.Sprintf("bench-worker-%d", i+1)
		node, err := b.start(ctx, name, []string{"DATABASE_URL=" + dbURL, "PICLOUD_LOG_LEVEL=warn"},
			"worker", "--concurrency", strconv.Itoa(concurrency), "--health-addr", addr, "--node-id", name, "--no-migrate")
		if err != nil {
			return run, err
		}
		nodes = append(nodes, node)
		ready = append(ready, "http://"+addr+"/readyz")
	}
	// Started together, so the workers' start-ups overlap.
	for i, node := range nodes {
		if err := node.waitReady(ctx, ready[i], time.Minute); err != nil {
			return run, err
		}
	}

	// count() keeps the ids on the server: the statement is the enqueue,
	// not 20,000 rows sent back to the harness.
	var enqueued int
	started := time.Now()
	if err := db.pool.QueryRow(ctx, "SELECT count(picloud.invoke('noop')) FROM generate_series(1, $1)", n).Scan(&enqueued); err != nil {
		return run, fmt.Errorf("enqueue: %w", err)
	}
	run.enqueue = time.Since(started)
	if enqueued != n {
		return run, fmt.Errorf("enqueued %d invocations, want %d", enqueued, n)
	}
	// The end is the database's finished_at, so the clock the burn-down is
	// timed on is the server's, read right after the commit: the workers
	// could not see a row before it, and polling adds no error.
	var committed time.Time
	if err := db.pool.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&committed); err != nil {
		return run, fmt.Errorf("read the server's clock: %w", err)
	}

	for {
		var unfinished, failed int
		var last *time.Time
		var now time.Time
		if err := db.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE finished_at IS NULL),
			       count(*) FILTER (WHERE finished_at IS NOT NULL AND status <> 'succeeded'),
			       max(finished_at), clock_timestamp()
			FROM picloud.invocations`).Scan(&unfinished, &failed, &last, &now); err != nil {
			return run, fmt.Errorf("count unfinished invocations: %w", err)
		}
		if failed > 0 {
			return run, fmt.Errorf("%d invocations of noop did not succeed", failed)
		}
		run.finished = n - unfinished
		switch {
		case unfinished == 0 && last != nil:
			run.elapsed = last.Sub(committed)
		case now.Sub(committed) >= limit && run.finished > 0:
			run.elapsed = now.Sub(committed)
		case now.Sub(committed) >= limit:
			return run, fmt.Errorf("no invocation finished within %v of the enqueue", limit)
		}
		if run.elapsed != 0 {
			if run.elapsed < 0 {
				return run, fmt.Errorf("the last invocation finished %v after the enqueue's commit", run.elapsed)
			}
			return run, nil
		}
		for _, node := range nodes {
			select {
			case <-node.exited:
				return run, node.unexpectedExit("during the burn-down")
			default:
			}
		}
		select {
		case <-ctx.Done():
			return run, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
