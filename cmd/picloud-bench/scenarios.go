package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/internal/bench"
)

// latency turns samples into p50 and p99 rows, each compared with the same
// quantile of baseline (a "scenario metric" prefix such as "floor select1").
// The p50 row also carries the whole distribution, which the report's
// chart draws next to the baseline's.
func latency(scenario, metric string, samples bench.Samples, baseline string) []result {
	dist := distributionOf(samples, baseline)
	var rs []result
	for _, q := range []struct {
		name  string
		value float64
	}{{"p50", dist.P50}, {"p99", dist.P99}} {
		r := result{Scenario: scenario, Metric: metric + " " + q.name, Unit: "ms", Value: q.value}
		if baseline != "" {
			r.baselineMetric = baseline + " " + q.name
		}
		rs = append(rs, r)
	}
	dist.Metric = metric
	rs[0].Latency = &dist
	return rs
}

// floor measures the PostgreSQL operations a PiCloud call is made of, on
// the platform's own pool, against one round trip.
func floor(ctx context.Context, p *platform, s settings) ([]result, error) {
	selectOne, err := bench.Sequential(ctx, s.Samples, bench.SelectOne(ctx, p.pool))
	if err != nil {
		return nil, fmt.Errorf("SELECT 1: %w", err)
	}
	insert, err := bench.InsertCommit(ctx, p.pool)
	if err != nil {
		return nil, err
	}
	inserts, err := bench.Sequential(ctx, s.Samples, insert)
	if err != nil {
		return nil, fmt.Errorf("INSERT+COMMIT: %w", err)
	}
	notify, closeListener, err := bench.NotifyToListener(ctx, p.pool)
	if err != nil {
		return nil, err
	}
	defer closeListener()
	notifies, err := bench.Sequential(ctx, s.Samples, notify)
	if err != nil {
		return nil, fmt.Errorf("NOTIFY to LISTEN: %w", err)
	}
	insertRate, err := bench.Throughput(ctx, s.Clients, s.ThroughputTime, insert)
	if err != nil {
		return nil, fmt.Errorf("INSERT+COMMIT throughput: %w", err)
	}
	var rs []result
	rs = append(rs, latency("floor", "select1", selectOne, "")...)
	rs = append(rs, latency("floor", "insert_commit", inserts, "floor select1")...)
	rs = append(rs, latency("floor", "notify_to_listen", notifies, "floor select1")...)
	rs = append(rs, result{Scenario: "floor", Metric: fmt.Sprintf("insert_commit throughput, %d clients", s.Clients), Unit: "ops/s", Value: insertRate})
	return rs, nil
}

const noopSource = `function handle() return "" end`

// helloFile is the example the README deploys; the harness runs from the
// repository's root, as `task bench` does.
const helloFile = "testdata/functions/hello.lua"

// syncHTTP measures synchronous /fn calls: latency one call at a time,
// then the most calls a closed loop of clients gets through.
func syncHTTP(ctx context.Context, p *platform, s settings) ([]result, error) {
	hello, err := os.ReadFile(helloFile)
	if err != nil {
		return nil, fmt.Errorf("read %s (run from the repository root): %w", helloFile, err)
	}
	if err := deploy(ctx, p, "noop", noopSource); err != nil {
		return nil, err
	}
	if err := deploy(ctx, p, "hello", string(hello)); err != nil {
		return nil, err
	}
	throughputBaseline := fmt.Sprintf("floor insert_commit throughput, %d clients", s.Clients)
	var rs []result
	for _, fn := range []struct{ name, path string }{
		{"noop", "/fn/noop"},
		{"hello", "/fn/hello?name=Ada"},
	} {
		call := p.get(ctx, fn.path)
		// The first calls start sandboxes and fill caches; a caller of a
		// running node never pays for them.
		if _, err := bench.Sequential(ctx, 20, call); err != nil {
			return nil, fmt.Errorf("warm up %s: %w", fn.path, err)
		}
		samples, err := bench.Sequential(ctx, s.Samples, call)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fn.path, err)
		}
		rate, err := bench.Throughput(ctx, s.Clients, s.ThroughputTime, call)
		if err != nil {
			return nil, fmt.Errorf("%s throughput: %w", fn.path, err)
		}
		rs = append(rs, latency("sync", "/fn/"+fn.name+" sequential", samples, "floor insert_commit")...)
		rs = append(rs, result{
			Scenario: "sync", Metric: fmt.Sprintf("/fn/%s throughput, %d clients", fn.name, s.Clients),
			Unit: "ops/s", Value: rate, baselineMetric: throughputBaseline,
		})
	}
	return rs, nil
}

func deploy(ctx context.Context, p *platform, name, source string) error {
	if _, _, err := catalog.New(p.pool).PutFunction(ctx, name, source, catalog.FunctionOptions{}); err != nil {
		return fmt.Errorf("deploy %s: %w", name, err)
	}
	return nil
}

// get returns an operation that calls path and fails on any answer but 200.
func (p *platform) get(ctx context.Context, path string) func() error {
	return func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path, nil)
		if err != nil {
			return err
		}
		res, err := p.http.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		if _, err := io.Copy(io.Discard, res.Body); err != nil {
			return err
		}
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: status %d", path, res.StatusCode)
		}
		return nil
	}
}

// wake measures, on an otherwise idle platform, how long a single SQL
// enqueue waits before a worker claims and starts it, as the database
// itself records it (started_at - created_at), so no client-side clock is
// involved. started_at is set in River's fetch (picloud.start_on_fetch), as
// River alone sets attempted_at; Lua begins one read of the row later.
func wake(ctx context.Context, p *platform, s settings) ([]result, error) {
	if err := deploy(ctx, p, "noop", noopSource); err != nil {
		return nil, err
	}
	ids := make([]int64, 0, s.WakeEnqueues)
	for range s.WakeEnqueues {
		var id int64
		if err := p.pool.QueryRow(ctx, "SELECT picloud.invoke('noop')").Scan(&id); err != nil {
			return nil, fmt.Errorf("enqueue: %w", err)
		}
		ids = append(ids, id)
		// Spaced so that each enqueue finds the workers idle: the point is
		// the wake-up, not a backlog.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(s.WakeSpacing):
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var pending int
		if err := p.pool.QueryRow(ctx, "SELECT count(*) FROM picloud.invocations WHERE id = ANY($1) AND started_at IS NULL", ids).Scan(&pending); err != nil {
			return nil, fmt.Errorf("count pending invocations: %w", err)
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d invocations did not start within a minute", pending, len(ids))
		}
		time.Sleep(50 * time.Millisecond)
	}
	rows, err := p.pool.Query(ctx, "SELECT started_at - created_at FROM picloud.invocations WHERE id = ANY($1)", ids)
	if err != nil {
		return nil, fmt.Errorf("read wake latencies: %w", err)
	}
	defer rows.Close()
	samples := make(bench.Samples, 0, len(ids))
	for rows.Next() {
		var d time.Duration
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("read wake latency: %w", err)
		}
		samples = append(samples, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read wake latencies: %w", err)
	}
	return latency("wake", "SQL invoke to Lua start", samples, "river "+riverWakeTuned), nil
}

// reconnectWake measures how long work enqueued right after the platform
// lost every connection (as in a database restart) waits before it
// starts: the node's listener must notice, reconnect and wake River's
// producers, since the wake-up sent with the enqueue found no one
// listening. The connections are cut with pg_terminate_backend, so the
// database takes new ones at once and the figure is the reconnect and the
// catch-up; after a real restart add at most the listener's retry
// interval (250 ms) to it. Rounds are 1.2 s apart: a connection dropped
// within a second of being made is treated as flapping and waits longer.
func reconnectWake(ctx context.Context, p *platform, s settings) ([]result, error) {
	if err := deploy(ctx, p, "noop", noopSource); err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, p.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rounds := 30
	if s.Quick {
		rounds = 8
	}
	samples := make(bench.Samples, 0, rounds)
	for range rounds {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(1200 * time.Millisecond):
		}
		if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
			return nil, fmt.Errorf("cut the connections: %w", err)
		}
		var id int64
		if err := conn.QueryRow(ctx, "SELECT picloud.invoke('noop')").Scan(&id); err != nil {
			return nil, fmt.Errorf("enqueue: %w", err)
		}
		deadline := time.Now().Add(time.Minute)
		for {
			var waited *time.Duration
			if err := conn.QueryRow(ctx, "SELECT started_at - created_at FROM picloud.invocations WHERE id = $1", id).Scan(&waited); err != nil {
				return nil, fmt.Errorf("read the start: %w", err)
			}
			if waited != nil {
				samples = append(samples, *waited)
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("invocation %d did not start within a minute of a reconnect", id)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return latency("reconnect wake", "connections cut, SQL invoke to Lua start", samples, ""), nil
}
