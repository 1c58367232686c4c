package queue_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/internal/platformtest"
	"github.com/picloud/picloud/queue"
)

// runningHere reports whether invocation id is recorded as running on a
// node by enqueue_invocation (its row in running_attempts names the node),
// and whether it is recorded as running at all.
func runningHere(t *testing.T, pool *pgxpool.Pool, id int64) (flagged, deadline bool) {
	t.Helper()
	if err := pool.QueryRow(context.Background(), `
		SELECT coalesce(bool_or(a.node IS NOT NULL), false), count(a.*) > 0
		FROM picloud.running_attempts a WHERE a.invocation_id = $1`, id).Scan(&flagged, &deadline); err != nil {
		t.Fatalf("read invocation %d: %v", id, err)
	}
	return flagged, deadline
}

// TestSyncCallRunsHere: a waiting caller on a node with a free slot gets
// its invocation started by the enqueue itself, with no River job, and its
// record of running here ends with the attempt.
func TestSyncCallRunsHere(t *testing.T) {
	t.Parallel()
	client, pool := worker(t, nil)
	put(t, client, "echo", echoPayload, catalog.FunctionOptions{})
	put(t, client, "limited", echoPayload, catalog.FunctionOptions{MaxConcurrency: 1})

	cases := []struct {
		name     string
		params   queue.InvokeParams
		waiting  bool
		wantHere bool
	}{
		{"waiting caller", queue.InvokeParams{Function: "echo"}, true, true},
		{"async caller", queue.InvokeParams{Function: "echo"}, false, false},
		{"idempotency key", queue.InvokeParams{Function: "echo", IdempotencyKey: "k"}, true, false},
		{"max_concurrency needs the general path", queue.InvokeParams{Function: "limited"}, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			send := invoke
			if tc.waiting {
				send = invokeWaiting
			}
			enq := send(t, client, tc.params)
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
			if flagged, deadline := runningHere(t, pool, enq.ID); flagged || deadline {
				t.Errorf("finished, yet still recorded as running here: flag %t, deadline row %t", flagged, deadline)
			}
			jobs := count(t, pool, `SELECT count(*) FROM picloud.river_job WHERE (args->>'invocation_id')::bigint = $1`, enq.ID)
			if wantJobs := map[bool]int{true: 0, false: 1}[tc.wantHere]; jobs != wantJobs {
				t.Errorf("%d River jobs carried it, want %d", jobs, wantJobs)
			}
		})
	}
	if n := count(t, pool, `SELECT count(*) FROM picloud.running_attempts`); n != 0 {
		t.Errorf("%d deadlines left behind", n)
	}
}

// TestRunHereRescuedWhenTheNodeDies: an invocation started where it was written
// on a node that then vanished is taken back like any other, by the rescue
// timer, and its new attempt runs on a live worker; without attempts left,
// it fails.
func TestRunHereRescuedWhenTheNodeDies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, pool := worker(t, nil)
	if _, err := pool.Exec(ctx, `UPDATE picloud.settings SET rescue_grace = '200 milliseconds'`); err != nil {
		t.Fatal(err)
	}
	put(t, client, "job", echoPayload, catalog.FunctionOptions{MaxAttempts: 2, Timeout: 300 * time.Millisecond})
	put(t, client, "once", echoPayload, catalog.FunctionOptions{MaxAttempts: 1, Timeout: 300 * time.Millisecond})
	crash := func(function string) int64 {
		t.Helper()
		var id int64
		if err := pool.QueryRow(ctx, `SELECT id FROM picloud.enqueue_invocation($1, 'api', NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, NULL, 'ghost')`, function).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	crashed := time.Now()
	retried, failed := crash("job"), crash("once")

	inv := waitFor(t, client, retried)
	if inv.Status != queue.StatusSucceeded || inv.Attempt != 2 || len(inv.Errors) != 1 || !strings.Contains(inv.Errors[0].Error, "stopped responding") {
		t.Fatalf("rescued invocation = %s attempt %d errors %+v", inv.Status, inv.Attempt, inv.Errors)
	}
	// Due at start + 300 ms timeout + 200 ms grace.
	if late := inv.Errors[0].At.Sub(crashed); late > 5*time.Second {
		t.Errorf("rescued %v after the crash, want about half a second", late)
	}
	if last := waitFor(t, client, failed); last.Status != queue.StatusFailed || !strings.Contains(last.Error, "stopped responding") {
		t.Errorf("rescued invocation without attempts left = %s %q", last.Status, last.Error)
	}
	if n := count(t, pool, `SELECT count(*) FROM picloud.running_attempts`); n != 0 {
		t.Errorf("%d deadlines left behind", n)
	}
}

// TestRunHereHandedBackOnStop: a call still running here when the drain
// runs out is handed back to the queue, and its job does not stay running.
func TestRunHereHandedBackOnStop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := platformtest.Database(t)
	client, err := queue.NewClient(pool, queue.Config{Executor: newExecutor(t), Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	put(t, client, "spin", `function handle() while true do end end`, catalog.FunctionOptions{MaxAttempts: 2, Timeout: 30 * time.Second})
	enq := invokeWaiting(t, client, queue.InvokeParams{Function: "spin"})
	if enq.Status != queue.StatusRunning {
		t.Fatalf("enqueued as %s, want started here", enq.Status)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_ = client.Stop(stopCtx) // the drain runs out: that is the point

	var status string
	var jobs int
	if err := pool.QueryRow(ctx, `SELECT i.status, (SELECT count(*) FROM picloud.river_job j
		WHERE (j.args->>'invocation_id')::bigint = i.id AND j.state = 'available') FROM picloud.invocations i WHERE i.id = $1`, enq.ID).Scan(&status, &jobs); err != nil {
		t.Fatal(err)
	}
	if status != "queued" || jobs != 1 {
		t.Errorf("after the stop: invocation %s with %d available jobs; want queued with 1", status, jobs)
	}
	if flagged, deadline := runningHere(t, pool, enq.ID); flagged || deadline {
		t.Errorf("handed back, yet still recorded as running here: flag %t, deadline row %t", flagged, deadline)
	}
}

// TestRunHereCancelled: cancelling a call that runs here stops it in its
// sandbox, and its waiter hears the cancellation.
func TestRunHereCancelled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, pool := worker(t, nil)
	put(t, client, "spin", `function handle() while true do end end`, catalog.FunctionOptions{Timeout: 15 * time.Minute})
	enq := invokeWaiting(t, client, queue.InvokeParams{Function: "spin"})
	if enq.Status != queue.StatusRunning {
		t.Fatalf("enqueued as %s, want started here", enq.Status)
	}
	if status, err := client.Cancel(ctx, enq.ID); err != nil || status != queue.StatusCancelled {
		t.Fatalf("Cancel = %s, %v", status, err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	inv, err := client.WaitEnqueued(waitCtx, enq)
	if err != nil || inv.Status != queue.StatusCancelled {
		t.Fatalf("WaitEnqueued = %s, %v; want cancelled", inv.Status, err)
	}
	if flagged, deadline := runningHere(t, pool, enq.ID); flagged || deadline {
		t.Errorf("cancelled, yet still recorded as running here: flag %t, deadline row %t", flagged, deadline)
	}
	// The sandbox is free again: the next call runs.
	put(t, client, "echo", echoPayload, catalog.FunctionOptions{})
	next := invokeWaiting(t, client, queue.InvokeParams{Function: "echo"})
	if inv, err := client.WaitEnqueued(waitCtx, next); err != nil || inv.Status != queue.StatusSucceeded {
		t.Errorf("the next call = %s, %v", inv.Status, err)
	}
}

// TestFetchedInvocationsStartTogether: the jobs of one River fetch are
// started by a few statements, not one each, and their finishes announced
// in a few notifications: a batch of 60 invocations enqueued in one
// transaction shares a handful of start times.
func TestFetchedInvocationsStartTogether(t *testing.T) {
	t.Parallel()
	client, pool := worker(t, nil)
	put(t, client, "echo", echoPayload, catalog.FunctionOptions{})
	const n = 60
	ids := invokeFromSQL(t, pool, "echo", n)
	for _, id := range ids {
		if inv := waitFor(t, client, id); inv.Status != queue.StatusSucceeded || inv.Attempt != 1 {
			t.Fatalf("invocation %d = %s attempt %d", id, inv.Status, inv.Attempt)
		}
	}
	starts := count(t, pool, `SELECT count(DISTINCT started_at) FROM picloud.invocations WHERE id = ANY($1)`, ids)
	finishes := count(t, pool, `SELECT count(DISTINCT finished_at) FROM picloud.invocations WHERE id = ANY($1)`, ids)
	t.Logf("%d invocations: %d start statements, %d finish statements", n, starts, finishes)
	if starts > n/4 {
		t.Errorf("%d invocations started at %d distinct times; want them started in a few batches", n, starts)
	}
	if finishes > n/4 {
		t.Errorf("%d invocations finished at %d distinct times; want them finished in a few batches", n, finishes)
	}
}

// TestWaitingTooLongHandsBack: a started invocation that waits on its node
// for a sandbox longer than half the rescue grace goes back to the queue
// unrun, without counting an attempt or recording an error, rather than
// being taken by the rescue as lost while it waits.
func TestWaitingTooLongHandsBack(t *testing.T) {
	ctx := context.Background()
	client, pool := worker(t, nil)
	if _, err := pool.Exec(ctx, `UPDATE picloud.settings SET rescue_grace = '1 second'`); err != nil {
		t.Fatal(err)
	}
	// Two slots and six runs waiting in the executor: with runs of 0.8 s,
	// the rest of 12 invocations wait longer than 0.5 s for a slot.
	put(t, client, "slow", `function handle(req) while os.clock() < 0.8 do end return req.payload end`,
		catalog.FunctionOptions{Timeout: 20 * time.Second})
	const n = 12
	ids := invokeFromSQL(t, pool, "slow", n)
	for _, id := range ids {
		inv := waitFor(t, client, id)
		if inv.Status != queue.StatusSucceeded || inv.Attempt != 1 || len(inv.Errors) != 0 {
			t.Errorf("invocation %d = %s, attempt %d, errors %v; want succeeded at the first attempt", id, inv.Status, inv.Attempt, inv.Errors)
		}
	}
	jobs := count(t, pool, `SELECT count(*) FROM picloud.river_job WHERE (args->>'invocation_id')::bigint = ANY($1)`, ids)
	if jobs <= n {
		t.Errorf("%d jobs for %d invocations; want some handed back with a new job", jobs, n)
	}
}

// invokeFromSQL enqueues n invocations of function in one SQL statement,
// committed together, and returns their ids.
func invokeFromSQL(t *testing.T, pool *pgxpool.Pool, function string, n int) []int64 {
	t.Helper()
	return ids(t, context.Background(), pool,
		`SELECT picloud.invoke($1, jsonb_build_object('n', g)) FROM generate_series(1, $2) g`, function, n)
}
