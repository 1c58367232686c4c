package queue_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/picloud/picloud/internal/platformtest"
	"github.com/picloud/picloud/queue"
)

// runHereJob reads the River job that carried invocation id: its state,
// the node that ran it, and whether the invocation still points at it.
func runHereJob(t *testing.T, pool *pgxpool.Pool, id int64) (state string, attemptedBy []string, pointed bool) {
	t.Helper()
	if err := pool.QueryRow(context.Background(), `
		SELECT j.state, coalesce(j.attempted_by, '{}'), i.run_here_job IS NOT NULL
		FROM picloud.river_job j JOIN picloud.invocations i ON i.id = (j.args->>'invocation_id')::bigint
		WHERE i.id = $1`, id).Scan(&state, &attemptedBy, &pointed); err != nil {
		t.Fatalf("read the job of invocation %d: %v", id, err)
	}
	return state, attemptedBy, pointed
}

// TestSyncCallRunsHere: a waiting caller on a node with a free slot gets
// its invocation started by the enqueue itself, and the job that carries it
// is completed with the attempt, with no River fetch in between.
func TestSyncCallRunsHere(t *testing.T) {
	client, pool := worker(t, nil)
	put(t, client, "echo", echoPayload, queue.FunctionOptions{})
	put(t, client, "limited", echoPayload, queue.FunctionOptions{MaxConcurrency: 1})

	cases := []struct {
		name     string
		params   queue.InvokeParams
		wantHere bool
	}{
		{"waiting caller", queue.InvokeParams{Function: "echo", Wait: true}, true},
		{"async caller", queue.InvokeParams{Function: "echo"}, false},
		{"idempotency key", queue.InvokeParams{Function: "echo", Wait: true, IdempotencyKey: "k"}, false},
		{"max_concurrency needs the general path", queue.InvokeParams{Function: "limited", Wait: true}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			enq := invoke(t, client, tc.params)
			if here := enq.Status == queue.StatusRunning; here != tc.wantHere {
				t.Fatalf("enqueued as %s, want started here = %t", enq.Status, tc.wantHere)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			inv, err := client.WaitEnqueued(ctx, enq)
			if err != nil || inv.Status != queue.StatusSucceeded || inv.Attempt != 1 {
				t.Fatalf("WaitEnqueued = %s attempt %d, %v", inv.Status, inv.Attempt, err)
			}
			if got := resultOf(t, inv).Trigger; got != "api" {
				t.Errorf("the function saw trigger %q", got)
			}
			state, by, pointed := runHereJob(t, pool, enq.ID)
			if state != "completed" && !tc.wantHere {
				// River completes its own jobs in batches, a moment later.
				return
			}
			if state != "completed" || pointed || len(by) != 1 {
				t.Errorf("job %s attempted by %v, invocation still points at it: %t", state, by, pointed)
			}
		})
	}
	if n := count(t, pool, `SELECT count(*) FROM picloud.invocations WHERE run_here_job IS NOT NULL`); n != 0 {
		t.Errorf("%d invocations still point at a job", n)
	}
}

// TestRunHereRescuedWhenTheNodeDies: an invocation started by invoke_here
// on a node that then vanished is taken back like any other: its job
// discarded, a new attempt run by a live worker.
func TestRunHereRescuedWhenTheNodeDies(t *testing.T) {
	ctx := context.Background()
	client, pool := worker(t, nil)
	if _, err := pool.Exec(ctx, `UPDATE picloud.settings SET rescue_grace = '200 milliseconds'`); err != nil {
		t.Fatal(err)
	}
	put(t, client, "job", echoPayload, queue.FunctionOptions{MaxAttempts: 2, Timeout: 300 * time.Millisecond})
	var id int64
	if err := pool.QueryRow(ctx, `SELECT id FROM picloud.invoke_here('job', 'api', NULL, NULL, NULL, NULL, NULL, false, NULL, 'ghost')`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	inv := waitFor(t, client, id)
	if inv.Status != queue.StatusSucceeded || inv.Attempt != 2 || len(inv.Errors) != 1 || !strings.Contains(inv.Errors[0].Error, "stopped responding") {
		t.Fatalf("rescued invocation = %s attempt %d errors %+v", inv.Status, inv.Attempt, inv.Errors)
	}
	if n := count(t, pool, `SELECT count(*) FROM picloud.river_job WHERE state = 'discarded' AND attempted_by = '{ghost}'`); n != 1 {
		t.Errorf("%d of the ghost node's jobs discarded, want 1", n)
	}
}

// TestRunHereHandedBackOnStop: a call still running here when the drain
// runs out is handed back to the queue, and its job does not stay running.
func TestRunHereHandedBackOnStop(t *testing.T) {
	ctx := context.Background()
	pool := platformtest.Database(t)
	client, err := queue.NewClient(pool, queue.Config{Executor: newExecutor(t), Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	put(t, client, "spin", `function handle() while true do end end`, queue.FunctionOptions{MaxAttempts: 2, Timeout: 30 * time.Second})
	enq := invoke(t, client, queue.InvokeParams{Function: "spin", Wait: true})
	if enq.Status != queue.StatusRunning {
		t.Fatalf("enqueued as %s, want started here", enq.Status)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_ = client.Stop(stopCtx) // the drain runs out: that is the point

	var status, jobs string
	if err := pool.QueryRow(ctx, `SELECT i.status, (SELECT string_agg(j.state::text, ',' ORDER BY j.id) FROM picloud.river_job j
		WHERE (j.args->>'invocation_id')::bigint = i.id) FROM picloud.invocations i WHERE i.id = $1`, enq.ID).Scan(&status, &jobs); err != nil {
		t.Fatal(err)
	}
	if status != "queued" || jobs != "completed,available" {
		t.Errorf("after the stop: invocation %s, jobs %s; want queued, completed,available", status, jobs)
	}
}
